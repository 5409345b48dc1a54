import type { Argv } from 'yargs';
import { defineCommand } from './command.js';

export const diffCli = defineCommand({
  command: 'diff <orig> <patched>',
  describe: 'compare two builds of one object (-ffunction-sections) function by function',
  builder: (y: Argv) =>
    y
      .positional('orig', { type: 'string', demandOption: true, describe: 'the object built from the original source' })
      .positional('patched', { type: 'string', demandOption: true, describe: 'the same object built with the patch applied' })
      .option('output', { alias: 'o', type: 'string', describe: 'write the output object for the module generator' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (changed, new, errors, …)' })
      .option('entry-size', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe: "special-section entry size, SECTION=BYTES (also kpatch's ALT_STRUCT_SIZE… variables)",
      }),
  run: async (a, io) => {
    const { diffCommand } = await import('../commands/diff-command.js');
    return diffCommand({ orig: a.orig, patched: a.patched, output: a.output, json: a.json, entrySize: a['entry-size'] }, io.out);
  },
});
