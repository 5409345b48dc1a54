import { createHash } from 'node:crypto';
import { BatchError } from './errors.js';
import type { Manifest, ManifestKernel, PatchSet } from './manifest.js';

/** One job of a batch: a patch set built (and verified) for one kernel. */
export interface Pair {
  /** `PATCHSET@KERNEL`: what reports, shards and the output dir are keyed by. */
  readonly id: PairId;
  readonly kernel: ManifestKernel;
  readonly patchset: PatchSet;
}

export type PairId = string & { readonly __pairId: unique symbol };

export const pairId = (patchset: string, kernel: string): PairId => `${patchset}@${kernel}` as PairId;

/** `--shard I/N`: worker I (from 1) of N. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(count >= 1 && index >= 1 && index <= count))
    throw new BatchError('BATCH_INPUT', `--shard ${text}: expected I/N with 1 <= I <= N (e.g. --shard 2/4 for the second of 4 workers)`);
  return { index, count };
}

/**
 * Which shard a pair belongs to: a hash of its own id, so a pair stays on its
 * worker when kernels or patch sets are added or removed (no coordinator, and
 * a worker's resumable output dir keeps its results from night to night).
 * The price is balance: shards are even only on average.
 */
export function shardOf(id: PairId, count: number): number {
  return (createHash('sha256').update(id).digest().readUInt32BE(0) % count) + 1;
}

/** Every pair of the manifest, patch set by patch set, then those of this shard. */
export function allPairs(m: Manifest): Pair[] {
  return m.patchsets.flatMap((patchset) => m.kernels.map((kernel) => ({ id: pairId(patchset.name, kernel.name), kernel, patchset })));
}

export function pairsOfShard(pairs: readonly Pair[], shard: Shard | undefined): Pair[] {
  return shard === undefined ? [...pairs] : pairs.filter((p) => shardOf(p.id, shard.count) === shard.index);
}
