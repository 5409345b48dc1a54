import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { digestTree } from '../../orchestrator/original/tree-digest.js';
import { BatchError } from './errors.js';
import type { ManifestKernel } from './manifest.js';
import type { Pair } from './pairs.js';

/**
 * What a pair's result depends on, as one digest: a finished result in the
 * output dir with the same digest is the result this run would make again.
 */

export type InputsDigest = string & { readonly __inputs: unique symbol };

/**
 * A kernel's identity. A hand-built kernel is its tree (the same metadata
 * digest the original cache keys on), its .config and its vmlinux's bytes; a
 * distribution kernel is its release name, which Debian never reuses for
 * other contents (a changed ABI is a new name).
 */
export async function kernelKey(k: ManifestKernel): Promise<string> {
  if (k.kind === 'distro') return `distro:${k.kernel}`;
  const where = (what: string, file: string) => (e: NodeJS.ErrnoException) => {
    throw new BatchError('BATCH_MANIFEST', `kernel ${k.name}: ${what} ${file}: ${e.code ?? e.message}`);
  };
  const source = await realpath(k.source).catch(where('source', k.source));
  const [tree, config, vmlinux, image] = await Promise.all([
    digestTree(source),
    readFile(k.config).catch(where('config', k.config)),
    fileDigest(k.vmlinux).catch(where('vmlinux', k.vmlinux)),
    k.image ? fileDigest(k.image).catch(where('image', k.image)) : Promise.resolve(''),
  ]);
  return createHash('sha256')
    .update(JSON.stringify([source, tree.digest, sha256(config), vmlinux, image, k.original ?? 'auto']))
    .digest('hex');
}

/** The digest of one pair: its patches' bytes in order, its checks, its kernel and this klpforge. */
export async function pairInputs(p: Pair, kernel: string, version: string): Promise<InputsDigest> {
  const patches = await Promise.all(
    p.patchset.patches.map((f) =>
      readFile(f).catch((e: NodeJS.ErrnoException) => {
        throw new BatchError('BATCH_MANIFEST', `patch set ${p.patchset.name}: patch ${f}: ${e.code ?? e.message}`);
      }),
    ),
  );
  return createHash('sha256')
    .update(JSON.stringify({ version, kernel, patches: patches.map(sha256), checks: p.patchset.checks.map((c) => c.text) }))
    .digest('hex') as InputsDigest;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Streamed: a vmlinux is tens of megabytes. */
export function fileDigest(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
