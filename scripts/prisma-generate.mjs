// Generates the Prisma clients for both schemas. `prisma generate` never runs
// the native schema engine, but without PRISMA_SCHEMA_ENGINE_BINARY the CLI tries
// to download one (impossible offline). The variable must name an existing file;
// any file will do because it is never executed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = `${root}node_modules/prisma/build/index.js`;
if (!existsSync(cli)) {
  // Production installs (npm ci --omit=dev) ship the generated client instead.
  console.log('prisma CLI not installed; skipping client generation');
  process.exit(0);
}
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
};
for (const provider of ['sqlite', 'postgres']) {
  execFileSync(process.execPath, [cli, 'generate', '--schema', `prisma/${provider}/schema.prisma`], {
    cwd: root,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}
