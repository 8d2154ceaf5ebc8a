// `npm run dev`: the CLI straight from TypeScript sources, no build step.
import { run } from '../src/cli.js';

await run();
