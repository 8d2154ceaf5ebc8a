// The ceilings tessera is compared with: bare Fastify servers doing only the
// unavoidable part of an endpoint's work, on the same machine, driven by the
// same load generator.
//
//   BENCH_SERVER=jwks  GET /.well-known/jwks.json answers the bytes in BENCH_JWKS
//   BENCH_SERVER=sign  POST /oauth/token (form-encoded) signs one RS256 JWT with
//                      jose, with the claims in BENCH_CLAIMS (fresh iat/exp/jti),
//                      and answers a token response of tessera's shape
//
// BENCH_WORKERS=n runs n processes under node:cluster (the multi-core ceiling).
// GET /ready answers 200 once every worker listens, so no connection of the
// load generator is pinned to the only worker up yet.
import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';

const kind = process.env.BENCH_SERVER;
const port = Number(process.env.PORT);
const workers = Number(process.env.BENCH_WORKERS ?? '1');

async function build(): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  if (kind === 'jwks') {
    const body = process.env.BENCH_JWKS ?? '';
    app.get('/.well-known/jwks.json', async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(body),
    );
  } else if (kind === 'sign') {
    const claims = JSON.parse(process.env.BENCH_CLAIMS ?? '{}') as Record<string, unknown>;
    const ttl = Number(claims.exp) - Number(claims.iat) || 900;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
    await app.register(formbody);
    app.post('/oauth/token', async (_request, reply) => {
      const iat = Math.floor(Date.now() / 1000);
      const accessToken = await new SignJWT({ ...claims, iat, exp: iat + ttl, jti: randomUUID() })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
        .sign(privateKey);
      reply.header('cache-control', 'no-store');
      return {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: ttl,
        // The size of a tessera refresh token (52 bytes, base64url).
        refresh_token: randomBytes(52).toString('base64url'),
      };
    });
  } else {
    throw new Error(`BENCH_SERVER must be jwks or sign (got ${kind})`);
  }
  let allListening = workers <= 1;
  process.on('message', (message) => {
    if (message === 'all-listening') allListening = true;
  });
  app.get('/ready', async (_request, reply) => reply.code(allListening ? 200 : 503).send(allListening ? 'ok' : 'wait'));
  return app;
}

if (workers > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) for (const worker of Object.values(cluster.workers ?? {})) worker?.send('all-listening');
  });
  for (let i = 0; i < workers; i += 1) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  });
} else {
  const app = await build();
  await app.listen({ host: '127.0.0.1', port });
  process.on('SIGTERM', () => {
    void app.close().then(() => process.exit(0));
  });
}
