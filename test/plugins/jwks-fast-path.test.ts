import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

/** One request over real HTTP on loopback (a fresh connection each time). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Headers that differ between any two responses (or between a socket and app.inject). */
const PER_RESPONSE = new Set(['date', 'x-request-id', 'connection', 'keep-alive', 'transfer-encoding']);

function stableHeaders(headers: IncomingHttpHeaders | Record<string, unknown>) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !PER_RESPONSE.has(name)));
}

/** How many requests of `work` reached a Fastify route handler (Fastify's own diagnostics channel). */
async function routedDuring(work: () => Promise<unknown>): Promise<number> {
  let routed = 0;
  const count = () => {
    routed += 1;
  };
  subscribe('tracing:fastify.request.handler:start', count);
  try {
    await work();
  } finally {
    unsubscribe('tracing:fastify.request.handler:start', count);
  }
  return routed;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function jwksRequestCount(t: TestApp): Promise<number> {
  const metrics = (await t.app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).body;
  const line = metrics
    .split('\n')
    .find(
      (row) =>
        row.startsWith('tessera_http_request_duration_seconds_count{') &&
        row.includes('route="/.well-known/jwks.json"') &&
        row.includes('method="GET"') &&
        row.includes('status_code="200"'),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

for (const provider of testProviders()) {
  describe(`JWKS over HTTP, served before Fastify's router (${provider})`, () => {
    let t: TestApp;
    let port: number;
    before(async () => {
      t = await startTestApp(provider);
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      const address = t.app.server.address();
      port = typeof address === 'object' && address ? address.port : 0;
    });
    after(() => t.close());

    it('answers a plain GET with the status, body and headers of the Fastify route', async () => {
      const routed = await t.app.inject({ url: '/.well-known/jwks.json' });
      const served = await get(port, '/.well-known/jwks.json');
      assert.equal(served.status, 200);
      assert.equal(served.body, routed.body);
      assert.deepEqual(stableHeaders(served.headers), stableHeaders(routed.headers));
      // The header names in the same order too (what a caller's parser sees).
      const names = (headers: Record<string, unknown>) => Object.keys(headers).filter((n) => !PER_RESPONSE.has(n));
      assert.deepEqual(names(served.headers), names(routed.headers));
      assert.match(String(served.headers['x-request-id']), UUID);
      assert.match(String(served.headers['cache-control']), /^public, max-age=\d+$/);
      assert.equal(served.headers['x-content-type-options'], 'nosniff');
    });

    it('answers the plain GET without Fastify routing it, and leaves HEAD and conditional GETs to the route', async () => {
      const etag = String((await t.app.inject({ url: '/.well-known/jwks.json' })).headers.etag);
      assert.equal(await routedDuring(() => get(port, '/.well-known/jwks.json')), 0);
      assert.equal(await routedDuring(() => get(port, '/.well-known/jwks.json', {}, 'HEAD')), 1);
      assert.equal(await routedDuring(() => get(port, '/.well-known/jwks.json', { 'if-none-match': etag })), 1);
      assert.equal(await routedDuring(() => get(port, '/healthz')), 1, 'other routes are routed as before');
    });

    it('leaves weak, list and * If-None-Match to the route, which answers them 304', async () => {
      const { etag } = (await get(port, '/.well-known/jwks.json')).headers;
      for (const ifNoneMatch of [`W/${etag}`, `"stale", W/${etag}`, '*']) {
        let res: Awaited<ReturnType<typeof get>> | undefined;
        const routed = await routedDuring(async () => {
          res = await get(port, '/.well-known/jwks.json', { 'if-none-match': ifNoneMatch });
        });
        assert.equal(routed, 1, ifNoneMatch);
        assert.equal(res?.status, 304, ifNoneMatch);
        assert.equal(res?.body, '', ifNoneMatch);
        assert.equal(res?.headers.etag, etag, ifNoneMatch);
      }
    });

    it('keeps a well-formed caller X-Request-Id and replaces a malformed one', async () => {
      const kept = await get(port, '/.well-known/jwks.json', { 'x-request-id': 'trace-42.a:b' });
      assert.equal(kept.headers['x-request-id'], 'trace-42.a:b');
      const replaced = await get(port, '/.well-known/jwks.json', { 'x-request-id': 'has spaces' });
      assert.match(String(replaced.headers['x-request-id']), UUID);
      const other = await get(port, '/.well-known/jwks.json');
      assert.notEqual(other.headers['x-request-id'], replaced.headers['x-request-id']);
    });

    it('counts each fetch in the request metrics of the route', async () => {
      const before = await jwksRequestCount(t);
      for (let i = 0; i < 3; i += 1) assert.equal((await get(port, '/.well-known/jwks.json')).status, 200);
      assert.equal(await jwksRequestCount(t), before + 3);
    });

    it('serves the new key set, with its new ETag, as soon as keys change', async () => {
      const first = await get(port, '/.well-known/jwks.json');
      await t.app.keyStore.rotate();
      const second = await get(port, '/.well-known/jwks.json');
      const routed = await t.app.inject({ url: '/.well-known/jwks.json' });
      assert.notEqual(second.headers.etag, first.headers.etag);
      assert.equal(second.headers.etag, routed.headers.etag);
      assert.equal(second.body, routed.body);
      assert.equal(
        JSON.parse(second.body).keys.length,
        JSON.parse(first.body).keys.length + 1,
        'the next key is published',
      );
      assert.equal(second.headers['content-length'], String(Buffer.byteLength(second.body)));
    });

    it('leaves conditional, HEAD and query-string requests to the route, which answers them as documented', async () => {
      const { etag } = (await get(port, '/.well-known/jwks.json')).headers;
      const notModified = await get(port, '/.well-known/jwks.json', { 'if-none-match': String(etag) });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.body, '');
      assert.equal(notModified.headers.etag, etag);
      const stale = await get(port, '/.well-known/jwks.json', { 'if-none-match': '"not-the-etag"' });
      assert.equal(stale.status, 200);
      assert.equal(stale.headers.etag, etag);
      const head = await get(port, '/.well-known/jwks.json', {}, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.equal(head.headers.etag, etag);
      const query = await get(port, '/.well-known/jwks.json?cache-buster=1');
      assert.equal(query.status, 200);
      assert.equal(query.headers.etag, etag);
      const post = await get(port, '/.well-known/jwks.json', {}, 'POST');
      assert.equal(post.status, 404);
      assert.match(String(post.headers['content-type']), /^application\/problem\+json/);
    });
  });
}

describe('JWKS over HTTP with CORS on', () => {
  let t: TestApp;
  let port: number;
  before(async () => {
    t = await startTestApp(testProviders()[0] ?? 'sqlite', { env: { ALLOWED_ORIGINS: 'https://app.example.test' } });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });
  after(() => t.close());

  it('answers every fetch with the CORS headers the route adds, Vary: Origin included', async () => {
    const allowed = await get(port, '/.well-known/jwks.json', { origin: 'https://app.example.test' });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.test');
    const plain = await get(port, '/.well-known/jwks.json');
    assert.equal(plain.body, allowed.body);
    assert.equal(plain.headers['access-control-allow-origin'], undefined);
    // A shared cache must not serve this copy to a cross-origin page: the route's headers, Vary among them.
    assert.match(String(plain.headers.vary), /origin/i);
    const routed = await t.app.inject({ url: '/.well-known/jwks.json' });
    assert.deepEqual(stableHeaders(plain.headers), stableHeaders(routed.headers));
  });
});
