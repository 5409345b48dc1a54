import { type ImmediateLoad, instructionBefore, matchesAt } from '../arch.js';
import type { Difference } from '../correlate/compare.js';
import type { Extent, ObjectView } from '../model/object-view.js';

/**
 * Functions that take `__LINE__` as an argument (directly or through the
 * kernel's macros). A patch that only moves code up or down changes the
 * immediate passed to them and nothing else: such functions are not changed.
 */
const LINE_MACRO_FUNCTIONS = new Set([
  '__warn_printk',
  'warn_slowpath_fmt',
  '__might_sleep',
  '___might_sleep',
  '__might_resched',
  '__might_fault',
  '__cant_sleep',
  '__cant_migrate',
  'printk',
  '_printk',
  'lockdep_rcu_suspicious',
  'rcu_read_lock_held',
  '__dynamic_pr_debug',
  '__dynamic_dev_dbg',
  '_dev_err',
  '_dev_warn',
  '_dev_info',
  '__ext4_error',
  '__ext4_warning',
  '__ext4_std_error',
  '__ext4_abort',
  '__ext4_grp_locked_error',
  '__btrfs_handle_fs_error',
  '__btrfs_abort_transaction',
  '__xfs_printk',
  'xfs_warn',
  'snd_printk',
  '__bad_area',
  'assert_fail',
]);
const LINE_MACRO_PREFIXES = ['warn_slowpath_', '__ext4_', '__btrfs_', 'xfs_'];

/**
 * How far after the immediate the call taking it may be: gcc sets the line
 * argument early and keeps it in its register (seen: 82 bytes before
 * __might_fault in __x64_sys_getresuid at -O2).
 */
const CALL_WINDOW = 160;
/** Larger immediates are not line numbers. */
const MAX_LINE = 1_000_000;

export function isLineMacroFunction(name: string): boolean {
  return LINE_MACRO_FUNCTIONS.has(name) || LINE_MACRO_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * True when every difference is the immediate of an argument load feeding a
 * call to a line-taking function, both values look like line numbers, and all
 * moved by the same amount (a line shift moves every later line alike; a
 * changed constant that happens to precede such a call would rarely match).
 */
export function onlyLineNumbersDiffer(diffs: readonly Difference[], o: ObjectView, eo: Extent, p: ObjectView, ep: Extent): boolean {
  if (diffs.length === 0) return false;
  const bo = o.bytesOf(eo);
  const bp = p.bytesOf(ep);
  const deltas = new Set<number>();
  for (const d of diffs) {
    if (d.kind !== 'bytes' || d.to === undefined) return false;
    const delta = lineImmediateDelta(d.offset, d.to, bo, bp, p, ep);
    if (delta === undefined) return false;
    deltas.add(delta);
  }
  return deltas.size === 1;
}

function lineImmediateDelta(from: number, to: number, bo: Buffer, bp: Buffer, p: ObjectView, ep: Extent): number | undefined {
  for (const load of p.arch.immediateLoads) {
    if (load.bits) {
      const delta = fieldImmediateDelta(from, to, bo, bp, p, ep, load, load.bits);
      if (delta !== undefined) return delta;
      continue;
    }
    const n = load.bytes.length;
    for (let imm = Math.max(n, to - load.size); imm <= from; imm++) {
      if (imm + load.size > bp.length || imm + load.size > bo.length) continue;
      // The same instruction in both builds: the register bits the pattern leaves open must agree too.
      if (!matchesAt(bo, imm - n, load) || !bo.subarray(imm - n, imm).equals(bp.subarray(imm - n, imm))) continue;
      const vo = readImmediate(bo, imm, load, p.obj.littleEndian);
      const vp = readImmediate(bp, imm, load, p.obj.littleEndian);
      if (vo <= 0 || vp <= 0 || vo >= MAX_LINE || vp >= MAX_LINE) continue;
      if (callsLineMacroAfter(p, ep, imm + load.size)) return vp - vo;
    }
  }
  return undefined;
}

/** The same for an immediate that is a bit field of one instruction word holding the whole difference. */
function fieldImmediateDelta(
  from: number,
  to: number,
  bo: Buffer,
  bp: Buffer,
  p: ObjectView,
  ep: Extent,
  load: ImmediateLoad,
  bits: { shift: number; width: number },
): number | undefined {
  const le = p.obj.littleEndian;
  const read = (b: Buffer, at: number) =>
    load.size === 2 ? (le ? b.readUInt16LE(at) : b.readUInt16BE(at)) : le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  const ones = 2 ** bits.width - 1;
  const value = (w: number) => {
    const v = (w >>> bits.shift) & ones;
    return load.signed && v > ones / 2 ? v - ones - 1 : v;
  };
  for (let at = Math.max(0, to - load.size); at <= from; at++) {
    if (at + load.size > bp.length || at + load.size > bo.length || !matchesAt(bo, at, load) || !matchesAt(bp, at, load)) continue;
    const wo = read(bo, at);
    const wp = read(bp, at);
    // The same instruction and register in both builds: only the field may differ.
    if (((wo ^ wp) & ~(ones << bits.shift)) !== 0) continue;
    const vo = value(wo);
    const vp = value(wp);
    if (vo <= 0 || vp <= 0 || vo >= MAX_LINE || vp >= MAX_LINE) continue;
    if (callsLineMacroAfter(p, ep, at + load.size)) return vp - vo;
  }
  return undefined;
}

/** The immediate at `at`, in the object's byte order and the instruction's signedness. */
function readImmediate(b: Buffer, at: number, load: ImmediateLoad, littleEndian: boolean): number {
  if (load.size === 2) {
    if (load.signed) return littleEndian ? b.readInt16LE(at) : b.readInt16BE(at);
    return littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }
  if (load.signed) return littleEndian ? b.readInt32LE(at) : b.readInt32BE(at);
  return littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at);
}

/**
 * The first call after the immediate must be to a line-taking function: an
 * argument register does not survive a call, so a value loaded before some
 * other call was that call's argument (a real constant), not a line number.
 */
function callsLineMacroAfter(p: ObjectView, e: Extent, after: number): boolean {
  const r = p.relocationsIn(e.section, e.start + after, Math.min(e.end, e.start + after + CALL_WINDOW));
  if (!r) return false;
  for (const k of Array.from(r.entries)) {
    if (!p.arch.callTypes.has(r.table.types[k]!) || !isCallSite(p, e, Number(r.table.offsets[k]!))) continue;
    const t = p.target(r.table, k, e.section);
    return t.kind === 'symbol' && isLineMacroFunction(p.symbol(t.sym).name);
  }
  return false;
}

/** Whether the relocated field at `offset` (section-relative) is the target of a call instruction. */
function isCallSite(p: ObjectView, e: Extent, offset: number): boolean {
  const body = p.obj.sections[e.section]!.body;
  return body.kind === 'bytes' && instructionBefore(body.data, offset, p.arch.callPrefixes);
}

/**
 * A source position spelled into a string: fortify's field-spanning memcpy
 * check (include/linux/fortify-string.h, FORTIFY_SOURCE as distributions
 * build) passes `"field \"" #p "\" at " __FILE__ ":" __stringify(__LINE__)`
 * to its WARN_ONCE, so a patch that only moves such a memcpy up or down
 * changes the digits after `FILE.c:` and nothing else. Two strings are the
 * same when they agree with those digits left out.
 */
const FILE_LINE = /(\.[chS]):\d+/g;

export function sameButForLineNumbers(a: string, b: string): boolean {
  return a !== b && a.replace(FILE_LINE, '$1:#') === b.replace(FILE_LINE, '$1:#');
}
