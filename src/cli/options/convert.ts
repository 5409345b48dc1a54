import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { defineCommand } from './command.js';

export const CONVERT_EPILOGUE = [
  'Every undefined symbol of MODULE that the running kernel does not export becomes a klp relocation against the vmlinux or ' +
    'module that defines it (.klp.sym.OBJ.NAME,POS, SHN_LIVEPATCH; .klp.rela.OBJ.SECTION). A name found more than once needs ' +
    'KLPFORGE_SYMPOS(sym, objname, pos) from kernel-headers/klpforge-convert.h; the error lists the candidates.',
  'Checked first, for each klp_func: the replaced function exists in the running kernel at its old_sympos, out of line (not ' +
    "only as gcc's .isra/.constprop/.part clone, not inlined everywhere), with an ftrace entry; callers in its own file are " +
    'named (IPA-RA).',
  'Exit codes: 0 converted; 2 the module cannot be a safe livepatch (every reason listed); 1 bad input; 64 command line not understood.',
].join('\n\n');

export const convertCli = defineCommand({
  command: 'convert <module>',
  describe: "turn a hand-written livepatch module's unexported symbols into klp relocations (klp-convert), with checks",
  builder: (y: Argv) =>
    y
      .positional('module', {
        type: 'string',
        demandOption: true,
        describe: 'the livepatch module (.ko), built with make M= KBUILD_MODPOST_WARN=1',
      })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the converted module' })
      .option('vmlinux', { alias: 'v', type: 'string', describe: "the running kernel's vmlinux (with its symbol table)" })
      .option('symvers', { type: 'string', describe: "the running kernel's Module.symvers (default: beside the vmlinux)" })
      .option('modules', {
        type: 'string',
        describe: "the running kernel's modules, searched recursively (default: the vmlinux's build dir)",
      })
      .option('make', {
        type: 'string',
        describe: "KDIR: build the module first, with make -C KDIR M=<the module's dir> KBUILD_MODPOST_WARN=1 modules",
      })
      .option('kernel', { type: 'string', describe: 'debian:RELEASE: that Debian kernel (fetched into the cache), instead of -v' })
      .option('cache-dir', {
        type: 'string',
        default: path.join(os.homedir(), '.cache/klpforge'),
        describe: 'where debian:RELEASE kernels are kept',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print a JSON report on stdout' })
      .epilogue(CONVERT_EPILOGUE),
  run: async (a, io) => {
    const { convertCommand } = await import('../commands/convert-command.js');
    return convertCommand(
      {
        module: a.module,
        output: a.output,
        ...(a.vmlinux !== undefined ? { vmlinux: a.vmlinux } : {}),
        ...(a.symvers !== undefined ? { symvers: a.symvers } : {}),
        ...(a.modules !== undefined ? { modules: a.modules } : {}),
        ...(a.kernel !== undefined ? { kernel: a.kernel } : {}),
        ...(a.make !== undefined ? { make: a.make } : {}),
        cacheDir: a['cache-dir'],
        json: a.json,
      },
      io.out,
      io.err,
    );
  },
});
