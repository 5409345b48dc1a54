/**
 * The environment a sandboxed command sees. The host's environment is not
 * carried in whole: its PATH, HOME or TMPDIR name places that do not exist in
 * the sandbox, and a build must not depend on whoever launched it. Only the
 * variables that change what a compile produces are passed through,
 * so the sandbox compiles what the host would.
 */

/** For a rootfs, which has no environment of its own: Debian's PATH for root (a superset of a user's) and a writable HOME. */
export const ROOTFS_BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/tmp',
};

/**
 * Host variables that reach what gcc and kbuild write, and the run's tag
 * (orphans.ts), which changes nothing they write. The locale is not one:
 * the sandbox may lack the host's, and perl then warns on every call.
 */
const PASSED_THROUGH = /^(SOURCE_DATE_EPOCH|KBUILD_BUILD_\w+|TZ|KLPFORGE_RUN)$/;

/**
 * The host's pass-through variables, then `env` (which wins). A container
 * image keeps its own PATH and HOME; a bare rootfs gets ROOTFS_BASE_ENV first.
 */
export function sandboxEnv(env: Readonly<Record<string, string>> = {}, host: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(host)) {
    if (value !== undefined && PASSED_THROUGH.test(name)) out[name] = value;
  }
  return { ...out, ...env };
}
