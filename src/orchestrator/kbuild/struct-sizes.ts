import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readElfFile } from '../../elf/index.js';
import { OrchestratorError } from '../errors.js';
import { HostRunner, type Runner } from '../runners/runner.js';

/**
 * Entry sizes of the kernel's special sections, as the target kernel itself
 * defines them: a small probe is compiled against the kernel build tree with
 * kbuild, recording sizeof() of each struct in a section of its own, and the
 * object is read back. No DWARF needed, and right for any version or config.
 */
export interface StructSizes {
  /** special section name → entry size in bytes (only the sections this kernel has). */
  entrySizes: Map<string, number>;
  /** Offset of `line` in struct bug_entry, when the kernel records lines (CONFIG_DEBUG_BUGVERBOSE). */
  bugLineOffset?: number;
}

/** [section, C expression, preprocessor condition]: a probe row per special section. */
const PROBES: ReadonlyArray<[string, string, string]> = [
  ['.altinstructions', 'sizeof(struct alt_instr)', 'defined(CONFIG_X86)'],
  ['__ex_table', 'sizeof(struct exception_table_entry)', 'defined(CONFIG_MMU)'],
  ['__jump_table', 'sizeof(struct jump_entry)', 'defined(CONFIG_JUMP_LABEL)'],
  ['__bug_table', 'sizeof(struct bug_entry)', 'defined(CONFIG_GENERIC_BUG)'],
  ['.static_call_sites', 'sizeof(struct static_call_site)', 'defined(CONFIG_HAVE_STATIC_CALL_INLINE)'],
  ['.orc_unwind', 'sizeof(struct orc_entry)', 'defined(CONFIG_UNWINDER_ORC)'],
  ['.parainstructions', 'sizeof(struct paravirt_patch_site)', 'defined(CONFIG_X86) && defined(CONFIG_PARAVIRT)'],
  ['.printk_index', 'sizeof(struct pi_entry *)', 'defined(CONFIG_PRINTK_INDEX)'],
];

const BUG_LINE_GUARD = 'defined(CONFIG_GENERIC_BUG) && defined(CONFIG_DEBUG_BUGVERBOSE)';

export function probeSource(): string {
  const rows = [...PROBES.map(([, expr, guard]) => [expr, guard] as const), ['offsetof(struct bug_entry, line)', BUG_LINE_GUARD] as const];
  return [
    "// klpforge: sizes of the kernel's special-section entries, read back from .klpforge.sizes.",
    '#include <linux/module.h>',
    '#include <linux/bug.h>',
    '#include <linux/jump_label.h>',
    '#include <linux/extable.h>',
    '#include <linux/uaccess.h>',
    '#include <linux/printk.h>',
    '#include <linux/static_call.h>',
    '#ifdef CONFIG_X86',
    '#include <asm/alternative.h>',
    '#include <asm/paravirt_types.h>',
    '#endif',
    '#ifdef CONFIG_UNWINDER_ORC',
    '#include <asm/orc_types.h>',
    '#endif',
    'const unsigned int klpforge_sizes[] __used __section(".klpforge.sizes") = {',
    ...rows.map(([expr, guard]) => `#if ${guard}\n\t${expr},\n#else\n\t0,\n#endif`),
    '};',
    'MODULE_LICENSE("GPL");',
    '',
  ].join('\n');
}

/** Compiles the probe in `workDir` against `buildDir` (make -C BUILD M=DIR probe.o) and reads the sizes back. */
export async function probeStructSizes(
  buildDir: string,
  workDir: string,
  runner: Runner = new HostRunner(),
  makeVars: readonly string[] = [],
): Promise<StructSizes> {
  const dir = path.join(workDir, 'struct-probe');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'klpforge_probe.c'), probeSource());
  await writeFile(path.join(dir, 'Kbuild'), 'obj-m += klpforge_probe.o\n');
  const r = await runner.run(['make', '-C', buildDir, `M=${dir}`, ...makeVars, 'klpforge_probe.o'], { cwd: dir });
  if (r.exitCode !== 0) {
    const lines = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .filter((l) => /error|Error/.test(l))
      .slice(0, 8)
      .join('\n');
    throw new OrchestratorError(
      'ORCH_PROBE_FAILED',
      `could not compile the struct-size probe against ${buildDir}: check the build tree is complete (make modules_prepare)\n${lines}`,
    );
  }
  const obj = await readElfFile(path.join(dir, 'klpforge_probe.o'));
  const idx = obj.findSection('.klpforge.sizes');
  const body = idx === undefined ? undefined : obj.section(idx).body;
  if (body?.kind !== 'bytes' || body.data.length !== (PROBES.length + 1) * 4) {
    throw new OrchestratorError(
      'ORCH_PROBE_FAILED',
      `${dir}/klpforge_probe.o: no .klpforge.sizes section of ${(PROBES.length + 1) * 4} bytes`,
    );
  }
  const read = (i: number) => (obj.littleEndian ? body.data.readUInt32LE(i * 4) : body.data.readUInt32BE(i * 4));
  const entrySizes = new Map<string, number>();
  PROBES.forEach(([section], i) => {
    if (read(i) > 0) entrySizes.set(section, read(i));
  });
  const line = read(PROBES.length);
  return { entrySizes, ...(line > 0 ? { bugLineOffset: line } : {}) };
}
