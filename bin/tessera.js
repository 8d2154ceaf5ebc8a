#!/usr/bin/env node
// Runs the compiled CLI (npm run build; `npm install` builds it via `prepare`).
import { run } from '../dist/src/cli.js';

await run();
