#!/usr/bin/env node
// Entry point: the CLI is compiled from src/cli by `npm run build`.
import { readFileSync, writeSync } from 'node:fs';

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  // Pipelines ask this before every job: answered before any of the CLI's modules load (a few ms above node's own
  // start instead of ~20). Any other use of --version goes through yargs, which prints the same line.
  writeSync(1, `${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
} else {
  const { main } = await import('../dist/src/cli/main.js');
  process.exitCode = await main(argv);
}
