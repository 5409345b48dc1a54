import { readdir } from 'node:fs/promises';
import path from 'node:path';

/** Every ELF object a kernel build left: `*.o` and `*.ko`, skipping the source symlink and hidden dirs. */
export async function kernelObjects(buildDir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'source') continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && (e.name.endsWith('.o') || e.name.endsWith('.ko'))) found.push(p);
    }
  }
  await walk(buildDir);
  return found.sort();
}
