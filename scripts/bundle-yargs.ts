/**
 * Bundles yargs and the ~45 modules it loads into one file, dist/vendor/yargs.js,
 * which src/cli/main.ts imports instead of yargs when it is there: Node's ESM
 * loader pays for every module it resolves and reads, and yargs' tree was most of
 * what `klpforge diff` cost before it read a byte (docs/benchmarks.md, "CLI start-up").
 * Run by `npm run build` after tsc; klpforge's own modules stay as tsc wrote them,
 * so what the tests run is what runs.
 *
 * Two changes to what is bundled, each failing the build when what it changes is not found:
 * every `string-width` is src/cli/string-width-shim.ts in front of the real one, and yargs
 * no longer renders a command's help when the command runs (below).
 *
 *   node dist/scripts/bundle-yargs.js
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outfile = path.join(repo, 'dist/vendor/yargs.js');

// yargs' platform shim finds its locales (the messages in LANG's language) and its
// require() from its own file's import.meta.url. In the bundle that URL would be the
// bundle's, so the shim's real place is put back, relative to where the bundle is.
const entry = realpathSync(fileURLToPath(import.meta.resolve('yargs')));
const shim = path.join(path.dirname(entry), 'lib/platform-shims/esm.mjs');
if (!existsSync(shim)) throw new Error(`${shim} is missing: yargs changed its layout, so scripts/bundle-yargs.ts needs a look`);
const shimFromBundle = path.relative(path.dirname(outfile), shim);

const WIDTH_SHIM = path.join(repo, 'src/cli/string-width-shim.ts');
const WIDTH_NAMESPACE = 'string-width-shim';

/**
 * Each `import stringWidth from 'string-width'` (yargs', cliui's and wrap-ansi's, two versions) gets the shim,
 * which answers printable ASCII and require()s the copy that import named the first time a string is not: esbuild
 * wraps a require()d module in a function run on that first call, so its Segmenter and regular expressions are
 * built only then, and each caller still gets its own version's answer for everything else.
 */
const stringWidthShim: Plugin = {
  name: 'string-width-shim',
  setup(b) {
    const own = Symbol('resolving string-width itself');
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === own) return undefined;
      const real = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: own });
      if (real.errors.length > 0) return { errors: real.errors };
      return { path: real.path, namespace: WIDTH_NAMESPACE };
    });
    b.onLoad({ filter: /./, namespace: WIDTH_NAMESPACE }, (args) => ({
      contents: [
        `import { asciiFirst } from ${JSON.stringify(WIDTH_SHIM)};`,
        `export default asciiFirst(() => require(${JSON.stringify(args.path)}).default);`,
      ].join('\n'),
      resolveDir: path.dirname(args.path),
      loader: 'js',
    }));
  },
};

/** Fails unless every module that imports a string-width's index.js is the shim's (no copy built at import). */
function checkStringWidthShimmed(meta: Metafile): void {
  const shimmed = Object.keys(meta.inputs).filter((p) => p.startsWith(`${WIDTH_NAMESPACE}:`));
  if (!shimmed.some((p) => p.includes('node_modules/string-width/')))
    throw new Error(`${outfile}: yargs' string-width was not replaced by the shim: scripts/bundle-yargs.ts needs a look`);
  for (const [input, { imports }] of Object.entries(meta.inputs))
    for (const i of imports)
      if (
        /(^|\/)string-width\/index\.js$/.test(i.path) &&
        !i.path.startsWith(`${WIDTH_NAMESPACE}:`) &&
        !input.startsWith(`${WIDTH_NAMESPACE}:`)
      )
        throw new Error(`${outfile}: ${input} imports ${i.path} past the string-width shim: scripts/bundle-yargs.ts needs a look`);
}

// After starting a command's handler, yargs renders that command's whole help (~12 ms) and keeps it, in case a
// later showHelp() or its own failure message wants it. klpforge's never does: its fail() (src/cli/main.ts) throws
// without printing help, and a handler gets only its arguments (src/cli/options/command.ts), never yargs.
// No option turns this off (only default commands skip it), so the call is taken out of the bundle.
const HELP_CACHE_CALL = 'yargs.getInternalMethods().getUsageInstance().cacheHelpMessage();';
let helpCacheRemoved = false;
const noHelpCache: Plugin = {
  name: 'no-help-cache',
  setup(b) {
    b.onLoad({ filter: /[\\/]yargs[\\/]build[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (text.split(HELP_CACHE_CALL).length !== 2)
        throw new Error(`${args.path}: "${HELP_CACHE_CALL}" is not there once: scripts/bundle-yargs.ts needs a look`);
      helpCacheRemoved = true;
      return { contents: text.replace(HELP_CACHE_CALL, ''), loader: 'js' };
    });
  },
};

const result = await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  banner: { js: `const __yargsShimUrl = new URL(${JSON.stringify(shimFromBundle)}, import.meta.url).href;` },
  define: { 'import.meta.url': '__yargsShimUrl' },
  plugins: [stringWidthShim, noHelpCache],
  metafile: true,
  logLevel: 'warning',
});
const bundled = readFileSync(outfile, 'utf8');
// The shim and yargs-parser's require() read import.meta.url; were it left as the bundle's, LANG's messages would silently be English.
if ((bundled.match(/__yargsShimUrl/g) ?? []).length < 2)
  throw new Error(`${outfile}: yargs' shim no longer reads import.meta.url as scripts/bundle-yargs.ts expects`);
checkStringWidthShimmed(result.metafile);
if (!helpCacheRemoved) throw new Error(`${outfile}: yargs' build/lib/command.js was not bundled: scripts/bundle-yargs.ts needs a look`);
console.log(`${path.relative(repo, outfile)}: yargs bundled (its shim at ${shimFromBundle})`);
