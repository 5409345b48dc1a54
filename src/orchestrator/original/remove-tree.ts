import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/**
 * Removes a half-made rootfs. debootstrap mounts /proc and /sys inside its
 * target while it runs; if it was killed they stay mounted, and a plain
 * `rm -rf` would walk into the host's /proc and /sys. So: detach every mount
 * under the directory first (deepest first), then remove without crossing
 * into any filesystem that is still mounted there.
 */
export async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const mount of await mountsUnder(dir)) {
    await execa('umount', ['-l', mount], { reject: false });
  }
  await execa('rm', ['-rf', '--one-file-system', '--', dir]);
}

/** Mount points at or under `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const prefix = dir.replace(/\/+$/, '');
  return (
    text
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((m): m is string => m !== undefined)
      // mountinfo escapes space, tab, newline and backslash as octal.
      .map((m) => m.replace(/\\([0-7]{3})/g, (_s, oct: string) => String.fromCharCode(parseInt(oct, 8))))
      .filter((m) => m === prefix || m.startsWith(`${prefix}/`))
      .sort((a, b) => b.length - a.length)
  );
}
