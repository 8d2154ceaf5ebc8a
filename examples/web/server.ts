// The browser demo as a process (the downstream example plus the page):
//   REFRESH_TOKEN_COOKIE=true ALLOWED_ORIGINS=http://localhost:4000 npm start    # tessera on :3000
//   TESSERA_ISSUER=http://localhost:3000 AUDIENCE=http://localhost:3000 \
//   node --import tsx examples/web/server.ts                                     # open http://localhost:4000
// Settings (environment): TESSERA_ISSUER and AUDIENCE (required), TESSERA_URL
// (where the browser reaches tessera, default TESSERA_ISSUER),
// REFRESH_BEFORE_EXPIRY (seconds, default 60), HOST (127.0.0.1), PORT (4000).
import { buildWebDemo } from './web-demo.js';

function setting(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value ? value : undefined;
}

function required(name: string): string {
  const value = setting(name);
  if (value === undefined) {
    console.error(`${name} is required`);
    process.exit(1);
  }
  return value;
}

const early = Number(setting('REFRESH_BEFORE_EXPIRY') ?? 60);
if (!Number.isFinite(early) || early < 0) {
  console.error('REFRESH_BEFORE_EXPIRY must be a number of seconds');
  process.exit(1);
}
const tesseraUrl = setting('TESSERA_URL');

const { app } = buildWebDemo({
  issuer: required('TESSERA_ISSUER'),
  audience: required('AUDIENCE'),
  ...(tesseraUrl === undefined ? {} : { tesseraUrl }),
  refreshBeforeExpirySeconds: early,
  logger: { level: setting('LOG_LEVEL') ?? 'info' },
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

await app.listen({ host: setting('HOST') ?? '127.0.0.1', port: Number(setting('PORT') ?? 4000) });
