import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`OpenTelemetry spans (${provider})`, () => {
    const exporter = new InMemorySpanExporter();
    let t: TestApp;
    before(async () => {
      // A real tracer provider exporting to memory, as an OTLP exporter would export to a collector.
      const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      trace.setGlobalTracerProvider(tracerProvider);
      t = await startTestApp(provider);
    });
    after(async () => {
      await t.close();
      trace.disable();
    });

    it('cover password hashing, token signing and database calls, without secrets', async () => {
      exporter.reset();
      const user = await registerAndLogin(t.app);
      const spans = exporter.getFinishedSpans();
      const names = new Set(spans.map((span) => span.name));
      assert.ok(names.has('argon2id.hash'), [...names].join(', '));
      assert.ok(names.has('argon2id.verify'));
      assert.ok(names.has('jwt.sign'));
      // Through Prisma (registration) and straight through the driver (the login's statements).
      for (const name of ['db.User.create', 'db.User.findByUsernameKey', 'db.Session.create', 'db.AuditEvent.insert']) {
        assert.ok(names.has(name), `${name} in ${[...names].join(', ')}`);
      }
      const sign = spans.find((span) => span.name === 'jwt.sign');
      assert.equal(sign?.attributes['tessera.kid'], t.app.keyStore.currentKid);
      const system = provider === 'sqlite' ? 'sqlite' : 'postgresql';
      for (const span of spans.filter((s) => s.name.startsWith('db.'))) {
        assert.equal(span.attributes['db.system'], system, span.name);
        assert.equal(typeof span.attributes['db.operation'], 'string', span.name);
      }
      const everything = JSON.stringify(spans.map((span) => ({ name: span.name, attributes: span.attributes })));
      assert.ok(!everything.includes(user.password) && !everything.includes(user.refresh_token));
    });

    it('show a refresh of a session this instance holds as one database statement, a replay as more', async () => {
      const user = await registerAndLogin(t.app);
      const refresh = (token: string) =>
        t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: token },
        });
      const databaseSpans = () =>
        exporter
          .getFinishedSpans()
          .filter((span) => span.name.startsWith('db.'))
          .map((span) => span.name);
      exporter.reset();
      const first = await refresh(user.refresh_token);
      assert.equal(first.statusCode, 200, first.body);
      assert.deepEqual(databaseSpans(), ['db.Session.rotateIfCurrent']);
      // Within the reuse grace the old token gets the same successor, decided on the row it reads.
      exporter.reset();
      const again = await refresh(user.refresh_token);
      assert.equal(again.json().refresh_token, first.json().refresh_token);
      assert.deepEqual(databaseSpans(), ['db.Session.rotateIfCurrent', 'db.Session.findWithUser']);
    });
  });
}

describe('startTracing', () => {
  it('is off by default and on with the standard OTEL_* variables', async () => {
    const { startTracing } = await import('../../src/telemetry/sdk.js');
    assert.equal(await startTracing({}), null);
    assert.equal(await startTracing({ OTEL_TRACES_EXPORTER: 'console', OTEL_SDK_DISABLED: 'true' }), null);
    const env: NodeJS.ProcessEnv = { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' };
    const stop = await startTracing(env);
    assert.equal(typeof stop, 'function');
    assert.equal(env.OTEL_SERVICE_NAME, 'tessera');
    await stop?.();
    trace.disable();
  });
});

describe('inSpan', () => {
  it('records spans while a tracer provider is registered, and none before or after', async () => {
    const { inSpan } = await import('../../src/telemetry/tracing.js');
    const exporter = new InMemorySpanExporter();
    const work = async () => 42;
    assert.equal(await inSpan('before', {}, work), 42);
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    try {
      assert.equal(await inSpan('during', { n: 1 }, work), 42);
      await assert.rejects(
        inSpan('failing', {}, async () => {
          throw new Error('boom');
        }),
        /boom/,
      );
    } finally {
      trace.disable();
    }
    assert.equal(await inSpan('after', {}, work), 42);
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((span) => span.name),
      ['during', 'failing'],
    );
    assert.equal(spans[1]?.status.code, SpanStatusCode.ERROR, 'the failure is recorded on the span');
  });
});

describe('inSpan without a tracer provider', () => {
  it('turns a synchronous throw of the work into a rejection, as with one', async () => {
    const { inSpan } = await import('../../src/telemetry/tracing.js');
    const promise = inSpan('sync-throw', {}, () => {
      throw new Error('thrown before any promise');
    });
    assert.ok(promise instanceof Promise);
    await assert.rejects(promise, /thrown before any promise/);
  });
});
