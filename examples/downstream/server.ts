// The downstream example as a process:
//   TESSERA_ISSUER=http://localhost:3000 AUDIENCE=http://localhost:3000 \
//   node --import tsx examples/downstream/server.ts
// Settings (environment): TESSERA_ISSUER and AUDIENCE (required), VERIFIER
// (jose | fastify-jwt), CLOCK_TOLERANCE (seconds), TESSERA_SERVICE_ID and
// TESSERA_SERVICE_SECRET (poll the revocation feed), REVOCATION_POLL_INTERVAL,
// REVOCATION_MAX_STALENESS (seconds, or "off" to accept tokens when the feed is
// unreachable), HOST (127.0.0.1), PORT (4000).
import { buildDownstream, type VerifierVariant } from './downstream.js';

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

function seconds(name: string): number | undefined {
  const value = setting(name);
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) {
    console.error(`${name} must be a number of seconds (got ${JSON.stringify(value)})`);
    process.exit(1);
  }
  return number;
}

const verifier = setting('VERIFIER') ?? 'jose';
if (verifier !== 'jose' && verifier !== 'fastify-jwt') {
  console.error(`VERIFIER must be jose or fastify-jwt (got ${JSON.stringify(verifier)})`);
  process.exit(1);
}
const serviceId = setting('TESSERA_SERVICE_ID');
const serviceSecret = setting('TESSERA_SERVICE_SECRET');
if ((serviceId === undefined) !== (serviceSecret === undefined)) {
  console.error('set both TESSERA_SERVICE_ID and TESSERA_SERVICE_SECRET, or neither');
  process.exit(1);
}
const staleness = setting('REVOCATION_MAX_STALENESS') === 'off' ? null : seconds('REVOCATION_MAX_STALENESS');
const tolerance = seconds('CLOCK_TOLERANCE');
const interval = seconds('REVOCATION_POLL_INTERVAL');

const { app } = buildDownstream({
  issuer: required('TESSERA_ISSUER'),
  audience: required('AUDIENCE'),
  verifier: verifier as VerifierVariant,
  ...(tolerance === undefined ? {} : { clockToleranceSeconds: tolerance }),
  ...(serviceId && serviceSecret
    ? {
        revocations: {
          serviceId,
          serviceSecret,
          ...(interval === undefined ? {} : { intervalSeconds: interval }),
          ...(staleness === undefined ? {} : { maxStalenessSeconds: staleness }),
        },
      }
    : {}),
  logger: { level: setting('LOG_LEVEL') ?? 'info' },
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}

await app.listen({ host: setting('HOST') ?? '127.0.0.1', port: Number(setting('PORT') ?? 4000) });
