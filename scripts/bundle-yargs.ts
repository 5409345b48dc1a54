/**
 * Bundles yargs and the ~45 modules it loads into one file, dist/vendor/yargs.js,
 * which src/cli/main.ts imports instead of yargs when it is there: Node's ESM
 * loader pays for every module it resolves and reads, and yargs' tree was most of
 * what `klpforge diff` cost before it read a byte (docs/benchmarks.md, "CLI start-up").
 * Run by `npm run build` after tsc; klpforge's own modules stay as tsc wrote them,
 * so what the tests run is what runs.
 *
 *   node dist/scripts/bundle-yargs.js
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outfile = path.join(repo, 'dist/vendor/yargs.js');

// yargs' platform shim finds its locales (the messages in LANG's language) and its
// require() from its own file's import.meta.url. In the bundle that URL would be the
// bundle's, so the shim's real place is put back, relative to where the bundle is.
const entry = realpathSync(fileURLToPath(import.meta.resolve('yargs')));
const shim = path.join(path.dirname(entry), 'lib/platform-shims/esm.mjs');
if (!existsSync(shim)) throw new Error(`${shim} is missing: yargs changed its layout, so scripts/bundle-yargs.ts needs a look`);
const shimFromBundle = path.relative(path.dirname(outfile), shim);

await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  banner: { js: `const __yargsShimUrl = new URL(${JSON.stringify(shimFromBundle)}, import.meta.url).href;` },
  define: { 'import.meta.url': '__yargsShimUrl' },
  logLevel: 'warning',
});
// The shim and yargs-parser's require() read import.meta.url; were it left as the bundle's, LANG's messages would silently be English.
if ((readFileSync(outfile, 'utf8').match(/__yargsShimUrl/g) ?? []).length < 2)
  throw new Error(`${outfile}: yargs' shim no longer reads import.meta.url as scripts/bundle-yargs.ts expects`);
console.log(`${path.relative(repo, outfile)}: yargs bundled (its shim at ${shimFromBundle})`);
