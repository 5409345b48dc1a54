/**
 * Runs every differ fixture (kernel-fixtures/diff/*) against the fixture
 * kernel and prints what the differ found, as the expect.json files hold it.
 *   npm run build && node --expose-gc dist/scripts/diff-fixtures.js [CASE...]
 * Also the benchmark of diffing every fixture pair in one process (times printed).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureCases, fixtureIndex, runCase } from '../test/helpers/diff-fixtures.js';
import type { FixtureKernel } from '../test/helpers/kernel.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const kernel = JSON.parse(execFileSync(path.join(repo, 'scripts/fetch-kernel'), ['--check'], { encoding: 'utf8' })) as FixtureKernel;
const wanted = process.argv.slice(2);
const cases = wanted.length > 0 ? wanted : await fixtureCases();
const index = await fixtureIndex(kernel);
let diffTotal = 0;
let pairs = 0;
for (const name of cases) {
  const t0 = Date.now();
  const r = await runCase(kernel, name, index);
  diffTotal += r.diffMs;
  pairs += Object.keys(r.objects).length;
  console.log(JSON.stringify({ case: name, ms: Date.now() - t0, diffMs: Math.round(r.diffMs), outcome: r.outcome, objects: r.objects }));
  for (const [obj, res] of Object.entries(r.results)) {
    for (const f of res.changed)
      console.log(`  ${obj}: changed ${f.name}: ${f.firstDifference?.what ?? ''} | ${f.optimizations.join('; ')}`);
    for (const x of res.refusals) console.log(`  ${obj}: REFUSED ${x.message}`);
    for (const w of res.warnings) console.log(`  ${obj}: warning ${w}`);
  }
}
console.log(
  `differ alone: ${pairs} object pairs in ${diffTotal.toFixed(0)} ms; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
);
