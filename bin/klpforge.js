#!/usr/bin/env node
// Entry point: the CLI is compiled from src/cli by `npm run build`.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
