import type { Difference } from './compare.js';
import type { Extent, ObjectView } from './object-view.js';

/**
 * Functions that take `__LINE__` as an argument (directly or through the
 * kernel's macros). A patch that only moves code up or down changes the
 * immediate passed to them and nothing else: such functions are not changed.
 */
const LINE_MACRO_FUNCTIONS = new Set([
  '__warn_printk', 'warn_slowpath_fmt', '__might_sleep', '___might_sleep', '__might_resched', '__might_fault',
  '__cant_sleep', '__cant_migrate', 'printk', '_printk', 'lockdep_rcu_suspicious', 'rcu_read_lock_held',
  '__dynamic_pr_debug', '__dynamic_dev_dbg', '_dev_err', '_dev_warn', '_dev_info', '__ext4_error', '__ext4_warning',
  '__ext4_std_error', '__ext4_abort', '__ext4_grp_locked_error', '__btrfs_handle_fs_error', '__btrfs_abort_transaction',
  '__xfs_printk', 'xfs_warn', 'snd_printk', '__bad_area', 'assert_fail',
]);
const LINE_MACRO_PREFIXES = ['warn_slowpath_', '__ext4_', '__btrfs_', 'xfs_'];

/** How far after the immediate the call taking it may be (arguments are set up just before a call). */
const CALL_WINDOW = 64;
/** Larger immediates are not line numbers. */
const MAX_LINE = 1_000_000;

export function isLineMacroFunction(name: string): boolean {
  return LINE_MACRO_FUNCTIONS.has(name) || LINE_MACRO_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * True when every difference is the immediate of an argument load feeding a
 * call to a line-taking function, and both values look like line numbers.
 */
export function onlyLineNumbersDiffer(diffs: readonly Difference[], o: ObjectView, eo: Extent, p: ObjectView, ep: Extent): boolean {
  if (diffs.length === 0) return false;
  const bo = o.bytesOf(eo);
  const bp = p.bytesOf(ep);
  return diffs.every((d) => d.kind === 'bytes' && d.to !== undefined && isLineImmediate(d.offset, d.to, bo, bp, p, ep));
}

function isLineImmediate(from: number, to: number, bo: Buffer, bp: Buffer, p: ObjectView, ep: Extent): boolean {
  const size = p.arch.immediateSize;
  for (const encoding of p.arch.immediateLoads) {
    for (let imm = Math.max(encoding.length, to - size); imm <= from; imm++) {
      const start = imm - encoding.length;
      if (!encoding.every((b, k) => bo[start + k] === b && bp[start + k] === b)) continue;
      if (imm + size > bp.length || imm + size > bo.length) continue;
      const vo = bo.readUInt32LE(imm);
      const vp = bp.readUInt32LE(imm);
      if (vo >= MAX_LINE || vp >= MAX_LINE) continue;
      if (callsLineMacroAfter(p, ep, imm + size)) return true;
    }
  }
  return false;
}

function callsLineMacroAfter(p: ObjectView, e: Extent, after: number): boolean {
  const r = p.relocationsIn(e.section, e.start + after, Math.min(e.end, e.start + after + CALL_WINDOW));
  if (!r) return false;
  return r.entries.some((k) => {
    if (!p.arch.callTypes.has(r.table.types[k]!)) return false;
    const t = p.target(r.table, k, e.section);
    return t.kind === 'symbol' && isLineMacroFunction(p.symbol(t.sym).name);
  });
}
