import { existsSync } from 'node:fs';
import type Yargs from 'yargs';

// `npm run build` bundles yargs into this one file (scripts/bundle-yargs.ts): loading its ~45 modules one by one was
// most of a short command's start-up. Without it (a tsc-only build, or ts-jest running src/) yargs loads from node_modules.
const BUNDLED = new URL('../../vendor/yargs.js', import.meta.url);

/** yargs' factory, from the bundle when there is one. */
export async function loadYargs(): Promise<typeof Yargs> {
  const m = existsSync(BUNDLED) ? ((await import(BUNDLED.href)) as { default: typeof Yargs }) : await import('yargs');
  return m.default;
}
