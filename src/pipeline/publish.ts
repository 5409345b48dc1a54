import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Puts a module built in scratch space into the output dir, under the same
 * name. Copy to a temp name beside the target, then rename: a reader never
 * sees half a module, a module already there is replaced whole or not at all,
 * and a failed copy (a full disk) leaves nothing behind. Copy rather than
 * rename because the scratch space is on the source tree's filesystem, which
 * need not be the output's.
 */
export async function publishModule(built: string, outputDir: string): Promise<string> {
  await mkdir(outputDir, { recursive: true });
  const out = path.join(outputDir, path.basename(built));
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await copyFile(built, tmp);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return out;
}
