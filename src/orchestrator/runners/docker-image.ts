import path from 'node:path';
import { execa } from 'execa';
import { SetupError } from '../setup-errors.js';
import { withFileLock } from '../original/file-lock.js';
import type { Rootfs } from './rootfs.js';
import { ROOTFS_BASE_ENV } from './sandbox-env.js';

/**
 * The docker runner's image when no --image is given: the bwrap runner's
 * debootstrap rootfs (the host's gcc and binutils, pinned), imported once
 * with `tar | docker import` (no registry involved) and tagged
 * `klpforge/rootfs:SUITE-KEY` after the rootfs's cache entry.
 *
 * Publication is atomic: the import is untagged, and the tag is set only
 * once tar and the import both succeeded, so a tag always names a whole
 * image; an interrupted import leaves at most an untagged one, never used.
 * It is made under the rootfs cache's flock(2) lock, so concurrent klpforge
 * runs import once: two imports of the same tree would each cost seconds
 * and 500 MB in the daemon, the loser's left behind as a dangling image.
 */

export const IMAGE_REPOSITORY = 'klpforge/rootfs';

/** Bump when the image made from a rootfs changes (labels, environment), so older ones are made again. */
export const IMAGE_RECIPE = 1;

/** `klpforge/rootfs:NAME`, NAME being the rootfs cache entry's (`bookworm-5f38533de5ffb7b9`). */
export function rootfsImageName(rootfsDir: string): string {
  return `${IMAGE_REPOSITORY}:${path.basename(rootfsDir)}`;
}

/**
 * What an image made from `rootfs` carries: the entry it came from and when
 * that entry was made, so an image of an older rootfs of the same key (one
 * removed and made again) is not taken for this one.
 */
export function rootfsImageLabels(rootfs: Rootfs): Record<string, string> {
  return {
    'klpforge.rootfs': path.basename(rootfs.path),
    'klpforge.rootfs.created': rootfs.stamp.created,
    'klpforge.image.recipe': String(IMAGE_RECIPE),
  };
}

/** `tar` writing the rootfs to stdout: numeric owners, as they are in the rootfs (its names are not the host's). */
export function rootfsTarArgv(rootfsDir: string): string[] {
  return ['tar', '-C', rootfsDir, '--numeric-owner', '-c', '.'];
}

/**
 * `docker import` of a tar on stdin, untagged: the labels, and the
 * environment a bare rootfs lacks (ROOTFS_BASE_ENV: PATH, a writable HOME),
 * as the bwrap runner gives it.
 */
export function importArgv(program: string, labels: Readonly<Record<string, string>>, message: string): string[] {
  const changes = [
    ...Object.entries(labels).map(([k, v]) => `LABEL ${k}=${JSON.stringify(v)}`),
    ...Object.entries(ROOTFS_BASE_ENV).map(([k, v]) => `ENV ${k}=${v}`),
  ];
  return [program, 'import', '--message', message, ...changes.flatMap((c) => ['--change', c]), '-'];
}

export interface EnsureImageOptions {
  rootfs: Rootfs;
  /** The docker program (default `docker`). */
  program?: string;
  onProgress?: (line: string) => void;
}

export interface RootfsImage {
  /** The tag to run. */
  image: string;
  /** True when this call imported it. */
  made: boolean;
}

/** The image of `rootfs`, imported now if docker has none that matches. Concurrent callers import once. */
export async function ensureRootfsImage(o: EnsureImageOptions): Promise<RootfsImage> {
  const program = o.program ?? 'docker';
  const image = rootfsImageName(o.rootfs.path);
  const labels = rootfsImageLabels(o.rootfs);
  const progress = o.onProgress ?? (() => {});
  if (matches((await inspectImage(program, image))?.labels, labels)) return { image, made: false };

  const cacheDir = path.dirname(o.rootfs.path);
  return withFileLock(
    path.join(cacheDir, `.${path.basename(o.rootfs.path)}.image.lock`),
    async () => {
      // Another process may have imported it while we waited for the lock.
      const before = await inspectImage(program, image);
      if (matches(before?.labels, labels)) return { image, made: false };
      progress(`docker: importing ${o.rootfs.path} as ${image} (once, about 10 s)`);
      const started = process.hrtime.bigint();
      const id = await importRootfs(program, o.rootfs.path, labels, image);
      const tag = await execa(program, ['tag', id, image], { reject: false, stdin: 'ignore' });
      if (tag.exitCode !== 0) {
        await execa(program, ['rmi', id], { reject: false, stdin: 'ignore' });
        throw failed(
          `${program} tag ${id} ${image} failed (${firstLine(tag.stderr) || `exit ${tag.exitCode}`}): check the daemon's log, or pass --image`,
        );
      }
      // The image this one replaces (an older rootfs's): freed unless a container still uses it, then left dangling.
      if (before && before.id !== id) await execa(program, ['rmi', before.id], { reject: false, stdin: 'ignore' });
      progress(`docker: image ${image} ready (${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s)`);
      return { image, made: true };
    },
    () => progress(`docker: waiting for another klpforge that is importing ${image}`),
  );
}

/**
 * `--image NAME` as given: it must exist, since klpforge runs with
 * `--pull never` (a registry mid-build would be slow where reachable, and
 * fail where not, as here).
 */
export async function checkImageExists(program: string, image: string): Promise<void> {
  const r = await execa(program, ['image', 'inspect', '--format', '{{.Id}}', image], { reject: false, stdin: 'ignore' });
  if (r.exitCode === 0) return;
  throw new SetupError(
    'RUNNER_IMAGE_MISSING',
    `--image ${image}: ${program} has no such image (${firstLine(r.stderr) || `exit ${r.exitCode}`}): ${program} pull or import it first, or drop --image to let klpforge make one from its debootstrap rootfs`,
  );
}

interface ImageInfo {
  id: string;
  labels: Record<string, string>;
}

async function inspectImage(program: string, image: string): Promise<ImageInfo | undefined> {
  const r = await execa(program, ['image', 'inspect', '--format', '{{.Id}} {{json .Config.Labels}}', image], {
    reject: false,
    stdin: 'ignore',
  });
  // Not there (or not readable, which the import then says more clearly).
  if (r.exitCode !== 0) return undefined;
  const space = r.stdout.indexOf(' ');
  try {
    return { id: r.stdout.slice(0, space), labels: (JSON.parse(r.stdout.slice(space + 1)) as Record<string, string> | null) ?? {} };
  } catch {
    return undefined;
  }
}

function matches(have: Readonly<Record<string, string>> | undefined, want: Readonly<Record<string, string>>): boolean {
  return have !== undefined && Object.entries(want).every(([k, v]) => have[k] === v);
}

const failed = (message: string): SetupError => new SetupError('RUNNER_IMAGE_FAILED', message);

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}

/** `tar | docker import`, both checked; the untagged image's id. An incomplete one is removed. */
async function importRootfs(program: string, rootfsDir: string, labels: Readonly<Record<string, string>>, image: string): Promise<string> {
  const [tarFile, ...tarArgs] = rootfsTarArgv(rootfsDir);
  const [, ...importArgs] = importArgv(program, labels, `klpforge: ${image} from ${rootfsDir}`);
  // 500 MB go through the pipe: tar's stdout is streamed, never buffered.
  const tar = execa(tarFile!, tarArgs, { reject: false, stdin: 'ignore', buffer: { stdout: false } });
  const i = await tar.pipe(program, importArgs, { reject: false });
  const t = i.pipedFrom[0];
  const id = /sha256:[0-9a-f]{64}/.exec(i.stdout)?.[0];
  // A tar that could not write had lost its reader: the import's failure is the one to tell.
  const tarLostReader = i.exitCode !== 0 && (t?.signal === 'SIGPIPE' || /Cannot write|Broken pipe/.test(String(t?.stderr ?? '')));
  if (!tarLostReader && (t === undefined || t.exitCode !== 0)) {
    if (id) await execa(program, ['rmi', id], { reject: false, stdin: 'ignore' });
    const root = process.getuid?.() === 0 ? '' : ' (the rootfs is made by root: run this once as root)';
    throw failed(
      `tar of ${rootfsDir} for ${program} import failed (${firstLine(String(t?.stderr ?? '')) || (t?.shortMessage ?? 'no result')}): it must be readable whole${root}, or pass --image`,
    );
  }
  if (i.exitCode !== 0 || !id) {
    throw failed(
      `${program} import of ${rootfsDir} as ${image} failed (${firstLine(i.stderr) || i.shortMessage}): check the daemon's disk (${program} system df) and its log, or pass --image`,
    );
  }
  return id;
}
