import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { diffObjects } from '../../src/diff/index.js';
import { type ElfObject, readElfFile, SHN } from '../../src/elf/index.js';
import { finalizeModule, parseSymvers } from '../../src/klp/index.js';
import { ensureCompilerPlugin, headersPackage, pluginFlags, pluginOffFlags } from '../../src/orchestrator/kbuild/compiler-plugin.js';
import { machineByName } from '../../src/orchestrator/kbuild/machine.js';
import { relocations } from '../helpers/output-sections.js';
import { compilePpc64le, PPC64LE_GCC, PPC64LE_KERNEL_FLAGS } from '../helpers/toolchain-ppc64le.js';

// elf.h: R_PPC64_REL24 = 10, R_PPC64_ENTRY = 118; `nop` is ori 0,0,0 (0x60000000).
const R_PPC64_REL24 = 10;
const R_PPC64_ENTRY = 118;
const NOP = 0x60000000;

const SOURCE = `
static int counter;
extern int ext(int);
static __attribute__((noinline)) int helper(int x) { return x * 3 + counter; }
__attribute__((noinline)) int glob(int x) { return x - 1; }
int target(int x) { counter++; return helper(x) + glob(x) + ext(x); }
int other(int x) { return helper(x + 1) + 1; }
`;

/** Each direct call's target and the word after its `bl` (section-relative, little-endian). */
function calls(elf: ElfObject, fn: string): Array<{ callee: string; next: number }> {
  const sym = elf.symbols.find((s) => s.name === fn)!;
  const body = elf.sections[sym.shndx]!.body;
  if (body.kind !== 'bytes') throw new Error(`${fn} has no bytes`);
  const out: Array<{ callee: string; next: number }> = [];
  for (const ri of elf.relocationsFor(sym.shndx)) {
    const rel = elf.sections[ri]!.body;
    if (rel.kind !== 'relocations') continue;
    const t = rel.table;
    for (let k = 0; k < t.length; k++) {
      if (t.types[k] !== R_PPC64_REL24) continue;
      const callee = elf.symbols[t.symbols[k]!]!.name;
      if (callee === '_mcount') continue;
      out.push({ callee, next: body.data.readUInt32LE(Number(t.offsets[k]!) + 4) });
    }
  }
  return out;
}

describe('ppc64le livepatch objects: -mcmodel=large and the klp_local_calls gcc plugin (machine.ts)', () => {
  const machine = machineByName('ppc64le')!;
  const plugin = machine.compilerPlugin!;
  let tmp: DirectoryResult;
  let so: string;
  beforeAll(async () => {
    tmp = await tmpDir({ unsafeCleanup: true });
    so = await ensureCompilerPlugin({
      plugin,
      cc: PPC64LE_GCC,
      source: path.resolve('gcc-plugins', `${plugin.name}.cc`),
      cacheDir: tmp.path,
    });
  }, 120_000);
  afterAll(async () => {
    await tmp.cleanup();
  });
  const livepatchFlags = () => [...PPC64LE_KERNEL_FLAGS, ...machine.livepatchCflags, ...pluginFlags(so)];

  test('every call to a function of the same file gets the nop a TOC-switching stub turns into `ld r2,24(r1)`', async () => {
    const [plain, patched] = await Promise.all([
      compilePpc64le(tmp.path, 'plain', SOURCE).then(readElfFile),
      compilePpc64le(tmp.path, 'lp', SOURCE, livepatchFlags()).then(readElfFile),
    ]);
    // The kernel's own build: calls that stay in the file have no nop (the module loader would refuse them).
    expect(calls(plain, 'target').filter((c) => c.callee !== 'ext')).toEqual(
      expect.arrayContaining([expect.objectContaining({ callee: 'helper' })]),
    );
    expect(calls(plain, 'target').find((c) => c.callee === 'helper')!.next).not.toBe(NOP);
    expect(calls(patched, 'target')).toEqual([
      { callee: 'helper', next: NOP },
      { callee: 'glob', next: NOP },
      { callee: 'ext', next: NOP },
    ]);
    // No sibling call is left whose `b` would have no slot: other() calls helper with bl.
    expect(calls(patched, 'other')).toEqual([{ callee: 'helper', next: NOP }]);
  });

  test("the plugin loaded with its off argument changes nothing: the running-kernel copies are the kernel's code", async () => {
    // One file name (it is in the object's symbol table), two directories.
    const [d1, d2] = [path.join(tmp.path, 'none'), path.join(tmp.path, 'off')];
    await Promise.all([mkdir(d1), mkdir(d2)]);
    const [none, off] = await Promise.all([
      compilePpc64le(d1, 'file', SOURCE),
      compilePpc64le(d2, 'file', SOURCE, [...PPC64LE_KERNEL_FLAGS, ...pluginFlags(so), ...pluginOffFlags(plugin)]),
    ]);
    const [a, b] = await Promise.all([readFile(none), readFile(off)]);
    expect(b.equals(a)).toBe(true);
  });

  test("a missing header names Debian's package for that gcc: native or cross", () => {
    expect(headersPackage('powerpc64le-linux-gnu-gcc', '12.2.0')).toBe('gcc-12-plugin-dev-powerpc64le-linux-gnu');
    expect(headersPackage('gcc', '12.2.0')).toBe('gcc-12-plugin-dev');
    expect(headersPackage('/usr/bin/gcc-12', '12')).toBe('gcc-12-plugin-dev');
  });

  test('a gcc without plugin headers (the s390x cross gcc here) is one error naming the package to install', async () => {
    await expect(
      ensureCompilerPlugin({
        plugin,
        cc: 's390x-linux-gnu-gcc',
        source: path.resolve('gcc-plugins', `${plugin.name}.cc`),
        cacheDir: tmp.path,
      }),
    ).rejects.toMatchObject({
      code: 'COMPILER_PLUGIN_FAILED',
      message: expect.stringMatching(
        /^gcc plugin klp_local_calls for s390x-linux-gnu-gcc: no plugin headers \(.*\); install g\+\+ and gcc-12-plugin-dev-s390x-linux-gnu$/,
      ),
    });
  });

  test('a second build of the same plugin for the same gcc is the cached one', async () => {
    const again = await ensureCompilerPlugin({
      plugin,
      cc: PPC64LE_GCC,
      source: path.resolve('gcc-plugins', `${plugin.name}.cc`),
      cacheDir: tmp.path,
    });
    expect(again).toBe(so);
  });

  test('post-link: a call to a vmlinux static keeps its `bl` opcode and its nop (ppc64 relocates bits of the word), and .TOC. stays for the loader', async () => {
    const src = `
extern int old_helper(int) asm("\\".klp.sym.vmlinux.old_helper,2\\"");
extern long old_value asm("\\".klp.sym.vmlinux.old_value,0\\"");
int f(int x) { return old_helper(x) + (int)old_value; }`;
    const o = await compilePpc64le(tmp.path, 'post-link', src, livepatchFlags());
    const ko = path.join(tmp.path, 'post-link.ko');
    await execa('powerpc64le-linux-gnu-ld', ['-r', '-o', ko, o]);
    const r = finalizeModule(await readElfFile(ko), parseSymvers('0x00000000\t_mcount\tvmlinux\tEXPORT_SYMBOL\t\n'), 'livepatch-p');
    expect(r.problems).toEqual([]);
    // The call from .text.f and the address in the .toc slot, each where the livepatch core applies it.
    expect(r.klpSections.map((x) => x.name).sort()).toEqual(['.klp.rela.vmlinux..text.f', '.klp.rela.vmlinux..toc']);
    const text = r.ko.sections[r.ko.findSection('.text.f')!]!.body;
    const rel = r.ko.sections[r.ko.findSection('.klp.rela.vmlinux..text.f')!]!.body;
    if (text.kind !== 'bytes' || rel.kind !== 'relocations') throw new Error('unexpected section kinds');
    const calls = [...rel.table].filter((x) => x.type === R_PPC64_REL24);
    expect(calls).toHaveLength(1);
    const at = Number(calls[0]!.offset);
    expect(text.data.readUInt32LE(at) >>> 26).toBe(18); // still `bl` (primary opcode 18, LK set)
    expect(text.data.readUInt32LE(at) & 1).toBe(1);
    expect(text.data.readUInt32LE(at + 4)).toBe(NOP);
  });

  test('large-model objects: only the changed function differs, its R_PPC64_ENTRY marker keeps symbol 0, its callees stay undefined', async () => {
    const changed = SOURCE.replace('counter++;', 'counter += 2;');
    const [a, b] = await Promise.all([
      compilePpc64le(tmp.path, 'large-a', SOURCE, livepatchFlags()).then(readElfFile),
      compilePpc64le(tmp.path, 'large-b', changed, livepatchFlags()).then(readElfFile),
    ]);
    const r = diffObjects(a, b, { compilerFlags: livepatchFlags().join(' '), output: true });
    expect(r.changed.map((c) => c.name)).toEqual(['target']);
    const out = r.output!;
    // The marker has no symbol (relocations() prints the null symbol's empty name).
    expect(relocations(out, '.text.target').filter((r) => r.split(' ')[1] === String(R_PPC64_ENTRY))).toEqual([`0 ${R_PPC64_ENTRY} +0`]);
    const undef = out.symbols.filter((s) => s.shndx === SHN.UNDEF && s.name !== '').map((s) => s.name);
    expect(undef).toEqual(expect.arrayContaining(['helper', 'glob', 'ext', 'counter']));
    expect(calls(out, 'target').every((c) => c.next === NOP)).toBe(true);
  });
});
