import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { relevantLines } from '../views/recompile.js';
import type { Runner } from '../runners/runner.js';
import { SetupError } from '../setup-errors.js';
import { readElfIdentity, type ElfIdentity } from './vmlinux-info.js';

/**
 * The compiler that builds the patch must be the one that built the running
 * kernel: another gcc version inlines, clones and lays out code differently,
 * so "changed functions" would be gcc's changes, and the new code could make
 * assumptions (struct layout via plugins, calling conventions of IPA clones)
 * the old code does not share.
 *
 * The compiler is identified the way the kernel records it: the string gcc
 * writes into every object's .comment section (`GCC: (Debian 12.2.0-14+deb12u1)
 * 12.2.0`), which the linker merges into vmlinux. The patch side's string comes
 * from compiling an empty file *through the Runner*, so with a sandboxed runner
 * the sandbox's gcc is the one checked, not the host's.
 */
export interface CompilerProbeOptions {
  runner: Runner;
  /** A writable scratch dir (visible to the runner); the probe goes in WORK/compiler-probe/. */
  workDir: string;
  /** The compiler kbuild will run (`CC`); default `gcc`. */
  cc?: string;
}

/** Compiler strings as objects record them: gcc's `GCC: …`, clang's `… clang version …`. */
export function compilerIds(identity: ElfIdentity): string[] {
  return identity.comments.filter((s) => s.startsWith('GCC:') || /\bclang version\b/.test(s));
}

/** Compiles an empty file with the patch's compiler and returns its .comment identity. */
export async function probeCompiler(o: CompilerProbeOptions): Promise<ElfIdentity> {
  const cc = o.cc ?? 'gcc';
  const dir = path.join(o.workDir, 'compiler-probe');
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'probe.c'),
    '/* klpforge: which compiler builds the patch */\nint klpforge_compiler_probe(void) { return 0; }\n',
  );
  const r = await o.runner.run([cc, '-c', 'probe.c', '-o', 'probe.o'], { cwd: dir });
  if (r.exitCode !== 0) {
    throw new SetupError(
      'COMPILER_UNUSABLE',
      `${cc} could not compile an empty file (exit ${r.exitCode}): install the compiler that built the kernel, or check the runner's environment\n${relevantLines(`${r.stderr}\n${r.stdout}`)}`,
    );
  }
  const identity = await readElfIdentity(path.join(dir, 'probe.o'));
  if (compilerIds(identity).length === 0) {
    throw new SetupError(
      'COMPILER_UNUSABLE',
      `${cc} wrote no compiler identity in .comment (${JSON.stringify(identity.comments)}): klpforge cannot tell which compiler it is; check the ${cc} in use`,
    );
  }
  return identity;
}

/** The first line of `CC --version`, run through the runner: the compiler identity the cache key uses. */
export async function compilerVersionLine(o: Omit<CompilerProbeOptions, 'workDir'> & { cwd: string }): Promise<string> {
  const cc = o.cc ?? 'gcc';
  const r = await o.runner.run([cc, '--version'], { cwd: o.cwd });
  const first = r.stdout.split('\n', 1)[0]!.trim();
  if (r.exitCode !== 0 || first === '') {
    throw new SetupError(
      'COMPILER_UNUSABLE',
      `'${cc} --version' failed (exit ${r.exitCode}): install the compiler that built the kernel\n${relevantLines(r.stderr)}`,
    );
  }
  return first;
}

export interface CompilerProblem {
  code: 'COMPILER_MISMATCH';
  severity: 'error';
  /** What built the target (every compiler string of its .comment, joined by ' + '). */
  target: string;
  /** What would build the patch. */
  patch: string;
  message: string;
}

export type CompilerCheck =
  | { status: 'match'; target: string; patch: string }
  | { status: 'skipped' }
  | { status: 'mismatch'; target: string; patch: string; problem: CompilerProblem };

export interface CompilerCheckOptions extends CompilerProbeOptions {
  /** The target's identity: readVmlinuxInfo(vmlinux) (or readElfIdentity of an out-of-tree module). */
  target: ElfIdentity;
  /** --skip-compiler-check: neither probe nor compare. */
  skip?: boolean;
}

/**
 * Match when the target records exactly one compiler and it is the patch's.
 * A target built by several compilers (or none recorded) is a mismatch too:
 * there is no single compiler to reproduce.
 */
export function compareCompilers(target: ElfIdentity, patch: ElfIdentity): CompilerCheck {
  const t = compilerIds(target);
  const p = compilerIds(patch);
  const targetText = t.length > 0 ? t.join(' + ') : '(no compiler recorded in .comment)';
  const patchText = p.join(' + ');
  if (t.length === 1 && p.length === 1 && t[0] === p[0]) return { status: 'match', target: targetText, patch: patchText };
  return {
    status: 'mismatch',
    target: targetText,
    patch: patchText,
    problem: {
      code: 'COMPILER_MISMATCH',
      severity: 'error',
      target: targetText,
      patch: patchText,
      message:
        `compiler mismatch: ${target.file} was built by "${targetText}" but the patch would be built by "${patchText}"; ` +
        'install the exact compiler that built the kernel (recommended), or pass --skip-compiler-check (unsafe: another compiler makes different code)',
    },
  };
}

export async function checkCompiler(o: CompilerCheckOptions): Promise<CompilerCheck> {
  if (o.skip) return { status: 'skipped' };
  return compareCompilers(o.target, await probeCompiler(o));
}
