import type { Argv } from 'yargs';
import { defineCommand } from './command.js';

export const elfCli = defineCommand({
  command: 'elf <file>',
  describe: 'show what klpforge reads in an ELF object; --write round-trips it through the model',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'ELF64 object (.o, .ko, vmlinux)' })
      .option('sections', { type: 'boolean', default: false, describe: 'list sections' })
      .option('symbols', { type: 'boolean', default: false, describe: 'list symbols' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .option('write', { type: 'string', describe: 'write the object back out to this path' }),
  run: async (a, io) => {
    const { elfCommand } = await import('../commands/elf-command.js');
    return elfCommand({ file: a.file, sections: a.sections, symbols: a.symbols, json: a.json, write: a.write }, io.out);
  },
});
