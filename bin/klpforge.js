#!/usr/bin/env node
// Entry point: the CLI is compiled from src/cli by `npm run build`.
import { readFileSync, writeSync } from 'node:fs';

// A reader that stops early (`klpforge diff A.o B.o | head -1`) closes the pipe, and the next write fails with EPIPE,
// which Node raises as an uncaught 'error' event: a stack trace and exit 1. Tools killed by SIGPIPE exit 141 instead,
// which `set -o pipefail` counts as a failure. klpforge does neither: it stops writing to the closed stream, finishes
// what it was doing (a build still writes its module) and exits with the command's own code, so the outcome
// (0 changed, 3 no change, ...) still reaches ${PIPESTATUS[0]}. Any other write error still ends the process.
function quietOnEpipe(e) {
  if (e.code !== 'EPIPE') throw e;
}

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  // Pipelines ask this before every job: answered before any of the CLI's modules load (a few ms above node's own
  // start instead of ~20), with writeSync: creating the process.stdout stream (as the EPIPE listener below would)
  // costs ~4 ms on a pipe. Any other use of --version goes through yargs, which prints the same line.
  try {
    writeSync(1, `${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  } catch (e) {
    quietOnEpipe(e);
  }
} else {
  process.stdout.on('error', quietOnEpipe);
  process.stderr.on('error', quietOnEpipe);
  const { main } = await import('../dist/src/cli/main.js');
  process.exitCode = await main(argv);
}
