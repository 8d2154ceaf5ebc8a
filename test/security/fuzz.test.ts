import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { decodeJwt } from 'jose';
import { PROBLEMS } from '../../src/errors.js';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';

/**
 * Property-based fuzzing of every route: arbitrary bodies (JSON values, form
 * fields, raw bytes, huge numbers, deep nesting, wrong content types), query
 * strings, path parameters and headers (Authorization with random schemes and
 * tokens, garbage x-request-id). The properties: never a 5xx; every 4xx is
 * problem details with a code from the closed list, or RFC 6749 §5.2
 * `{error, error_description}` on the OAuth endpoints; every response carries
 * an x-request-id (the caller's when it is well-formed). SQLite only: the
 * parsing and validation under test do not depend on the database.
 *
 * FUZZ_RUNS (default 300 per route) and FUZZ_SEED reproduce or widen a run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
// Chosen here rather than by fast-check so that every failure names it, one thrown while
// generating an input too (fast-check reports its seed only when the property fails).
const SEED = Number(process.env.FUZZ_SEED ?? randomInt(2 ** 31));

/** fc.assert with this file's run count and seed; a failure's message ends with how to reproduce it. */
async function assertProperty<Ts>(property: fc.IAsyncProperty<Ts>, numRuns = RUNS): Promise<void> {
  try {
    await fc.assert(property, { numRuns, seed: SEED, endOnFailure: true });
  } catch (error) {
    if (error instanceof Error) error.message += `\n(reproduce with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS})`;
    throw error;
  }
}

const SERVICE_ID = 'fuzz-service';
const SERVICE_SECRET = 'fuzz-service-secret-0123456789abcdef0123456789';
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROBLEM_CODES = new Set(Object.keys(PROBLEMS));

/**
 * Placeholders replaced at request time by live credentials (arbitraries are
 * built before the app exists). Letters only, so they survive JSON and form
 * encoding unchanged; the live value is encoded for where it lands.
 */
const VALID_BEARER = 'QqVALIDBEARERqQ';
const VALID_BASIC = 'QqVALIDBASICqQ';
const VALID_REFRESH = 'QqVALIDREFRESHqQ';
const VALID_ACCESS = 'QqVALIDACCESSqQ';
const VALID_SID = 'QqVALIDSIDqQ';
const CURRENT_PASSWORD = 'QqCURRENTPASSWORDqQ';
const FUZZER = 'QqFUZZERqQ';
const VICTIM = 'QqVICTIMqQ';
const PLACEHOLDER = /Qq[A-Z]+qQ/g;

type Kind = 'oauth' | 'problem';
interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** The OpenAPI path. */
  path: string;
  kind: Kind;
  auth: 'bearer' | 'basic' | 'client' | 'none';
  /** Fields of a well-aimed body, with arbitraries for their values. */
  fields?: Record<string, fc.Arbitrary<unknown>>;
  /** The route changes the caller's sessions or password: use a fresh login for valid credentials. */
  destructive?: boolean;
  /** Well-formed bodies that should succeed, so the fuzzer reaches past validation into the handler. */
  valid?: fc.Arbitrary<Record<string, unknown>>;
}

// ---------------------------------------------------------------- arbitraries

const char = (min: number, max: number) => fc.integer({ min, max }).map((code) => String.fromCharCode(code));
/** Printable ASCII: what any header value may hold. */
const asciiText = (maxLength = 80) => fc.string({ unit: char(0x20, 0x7e), maxLength });
/** Header values: printable ASCII plus Latin-1 (obs-text), the most HTTP allows. */
const headerText = (maxLength = 120) =>
  fc.string({ unit: fc.oneof({ weight: 4, arbitrary: char(0x20, 0x7e) }, char(0xa0, 0xff)), maxLength });
/** Any Unicode code points, lone surrogates included. */
const unicodeText = (maxLength = 40) => fc.string({ unit: 'binary', maxLength });
const anyText = (maxLength = 40) =>
  fc.oneof(
    fc.string({ maxLength }),
    unicodeText(maxLength),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.constantFrom(
      '',
      ' ',
      '\u0000',
      '\u202e',
      'ﬀ',
      'Ａｌｉｃｅ',
      'a\u0301',
      '\ud800',
      '%00',
      "' OR 1=1 --",
      '../../etc/passwd',
    ),
  );
const b64json = (value: unknown) => Buffer.from(JSON.stringify(value) ?? 'null').toString('base64url');
/** Something shaped like a JWT, with arbitrary header and payload. */
const jwtLike = fc
  .tuple(
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record({
        alg: fc.constantFrom('RS256', 'none', 'HS256', 'ES256'),
        typ: fc.constantFrom('at+jwt', 'JWT', undefined),
        kid: fc.oneof(asciiText(40), fc.jsonValue({ maxDepth: 1 })),
      }),
    ),
    fc.jsonValue({ maxDepth: 2 }),
    fc.oneof(
      fc.constant(''),
      fc.base64String({ maxLength: 400 }).map((s) => s.replaceAll('=', '')),
    ),
  )
  .map(([header, payload, signature]) => `${b64json(header)}.${b64json(payload)}.${signature}`);
/** Short, likely-colliding or crafted tokens, and random ones. */
const tokenText = fc.oneof(
  asciiText(120),
  fc.base64String({ maxLength: 120 }),
  fc.uint8Array({ minLength: 0, maxLength: 80 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
  fc.uint8Array({ minLength: 52, maxLength: 52 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
  jwtLike,
  fc.constantFrom(VALID_REFRESH, VALID_ACCESS),
);

const authorization = (auth: Route['auth']) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    {
      weight: 3,
      arbitrary: fc.constant(auth === 'bearer' ? VALID_BEARER : auth === 'none' ? undefined : VALID_BASIC),
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'Digest', 'DPoP', 'Token', 'Negotiate', ''),
          fc.constantFrom(' ', '  ', '\t', ''),
          fc.oneof(
            headerText(),
            tokenText.filter((s) => !s.startsWith('Qq')),
            jwtLike,
          ),
        )
        .map(([scheme, gap, value]) => `${scheme}${gap}${value}`),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(headerText(40), headerText(40))
        .map(([id, secret]) => `Basic ${Buffer.from(`${id}:${secret}`, 'latin1').toString('base64')}`),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `Basic ${Buffer.from(`${SERVICE_ID}:wrong`).toString('base64')}`,
        `Basic ${Buffer.from(`${SERVICE_ID}:${SERVICE_SECRET}x`).toString('base64')}`,
        `Basic ${Buffer.from(`:${SERVICE_SECRET}`).toString('base64')}`,
        'Basic ====',
        'Basic',
        `Bearer ${VALID_BEARER}`,
      ),
    },
    { weight: 1, arbitrary: headerText(200) },
  );

const requestId = fc.oneof(
  fc.constant(undefined),
  headerText(200),
  fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
  fc.stringMatching(/^[A-Za-z0-9._:-]{129,140}$/),
  fc.constantFrom('', ' ', 'a b', 'id\t', '<script>', '$' + '{jndi:ldap://x}', '%0d%0aSet-Cookie: x=1'),
);

/** Other headers a client might send, with garbage values. */
const extraHeaders = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      'accept',
      'accept-encoding',
      'accept-language',
      'origin',
      'referer',
      'user-agent',
      'cookie',
      'if-none-match',
      'x-forwarded-for',
      'x-forwarded-proto',
      'x-forwarded-host',
      'forwarded',
      'content-encoding',
      'expect',
      'range',
      'x-http-method-override',
    ),
    fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
  ),
  headerText(),
  { maxKeys: 4 },
);

const queryString = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.tuple(anyText(20), anyText(40)), { maxLength: 5 })
      .map((pairs) => pairs.map(([key, value]) => `${percentEncode(key)}=${percentEncode(value)}`).join('&')),
  },
  {
    weight: 2,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.constantFrom(
            'since',
            'limit',
            'before',
            'token',
            'id',
            'username',
            '__proto__',
            'constructor',
            'since[]',
            'a[b]',
          ),
          fc.oneof(
            anyText(40),
            fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
            fc.integer({ min: -5, max: 200 }).map(String),
            fc.constantFrom(
              '2030-01-01T00:00:00Z',
              '1970-01-01T00:00:00Z',
              '9999-12-31T23:59:59Z',
              '0000-01-01T00:00:00Z',
              '2024-02-30T25:61:61Z',
              '+275760-09-13T00:00:00Z',
              'now',
              '-1',
              '1e3',
              '050',
            ),
          ),
        ),
        { maxLength: 4 },
      )
      .map((pairs) => pairs.map(([key, value]) => `${percentEncode(key)}=${percentEncode(value)}`).join('&')),
  },
  // Raw ASCII, stray `%` and all (a well-formed path is kept; see the bad-percent-encoding test).
  { weight: 1, arbitrary: fc.string({ unit: char(0x21, 0x7e), maxLength: 60 }).map((s) => s.replaceAll('#', '')) },
);

/** Percent-encodes the UTF-8 bytes of any string (lone surrogates become U+FFFD). */
function percentEncode(value: string): string {
  return encodeURIComponent(Buffer.from(value, 'utf8').toString('utf8'));
}

/** A value for one body field: mostly strings, sometimes anything at all. */
const fieldValue = (aimed: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 4, arbitrary: aimed },
    { weight: 2, arbitrary: anyText(80) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.bigInt().map((n) => n.toString()),
        fc.double(),
        fc.integer(),
        fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0, 1e308),
      ),
    },
    { weight: 1, arbitrary: fc.string({ minLength: 1000, maxLength: 5000 }) },
  );

interface BodySpec {
  contentType: string | undefined;
  payload: string | Buffer | undefined;
}

/**
 * Form-encodes generated fields; a non-string value goes as its JSON text. Not `String(value)`:
 * `fc.jsonValue` can make `{ "toString": 0 }`, which `String` cannot convert (it throws).
 */
function formEncode(fields: Record<string, unknown>): string {
  const text = (value: unknown) => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (Array.isArray(value)) for (const item of value) params.append(key, text(item));
    else params.append(key, text(value));
  }
  return params.toString();
}

const contentType = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json',
      'application/x-www-form-urlencoded',
      'application/json; charset=utf-8',
      'application/x-www-form-urlencoded; charset=UTF-8',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined,
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=----x',
      'application/octet-stream',
      'application/JSON',
      'Application/Json',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/problem+json',
      'application/jsonx',
      'application/x-www-form-urlencodedx',
      'text/json',
      '*/*',
      'application/json, text/plain',
      ';',
      'application/',
    ),
  },
  { weight: 1, arbitrary: headerText(60) },
);

/** Bodies: aimed at the route's fields (JSON or form-encoded), or arbitrary JSON, text, bytes, nesting. */
const bodyFor = (route: Route): fc.Arbitrary<BodySpec> => {
  const fields = route.fields ?? {};
  const aimed = fc
    .tuple(
      fc.record(Object.fromEntries(Object.entries(fields).map(([key, arbitrary]) => [key, fieldValue(arbitrary)])), {
        requiredKeys: [],
      }),
      fc.dictionary(fc.oneof(anyText(12), fc.constantFrom('__proto__', 'constructor', 'prototype')), anyText(20), {
        maxKeys: 2,
      }),
    )
    .map(([known, extra]) => ({ ...extra, ...known }));
  const goodType = fc.constantFrom(
    'application/json',
    'application/x-www-form-urlencoded',
    'application/json; charset=utf-8',
    'application/x-www-form-urlencoded; charset=UTF-8',
  );
  const valid = route.valid
    ? fc
        .tuple(
          route.valid,
          fc.option(fc.dictionary(fc.stringMatching(/^[a-z_]{1,12}$/), anyText(20), { maxKeys: 2 })),
          goodType,
        )
        .map(([body, extra, type]) => {
          const merged = { ...(extra ?? {}), ...body };
          return { contentType: type, payload: type.includes('form') ? formEncode(merged) : JSON.stringify(merged) };
        })
    : null;
  return fc.oneof(
    ...(valid ? [{ weight: 3, arbitrary: valid }] : []),
    {
      weight: 5,
      arbitrary: fc.tuple(aimed, contentType).map(([body, type]) => ({
        contentType: type,
        payload: type?.includes('form') ? formEncode(body) : JSON.stringify(body),
      })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.jsonValue({ maxDepth: 4 }), contentType)
        .map(([value, type]) => ({ contentType: type, payload: JSON.stringify(value) ?? '' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.oneof(anyText(300), headerText(300)), contentType)
        .map(([text, type]) => ({ contentType: type, payload: text })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.uint8Array({ maxLength: 400 }), contentType)
        .map(([bytes, type]) => ({ contentType: type, payload: Buffer.from(bytes) })),
    },
    {
      // Huge and odd numbers as raw JSON text.
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...Object.keys(fields), 'x'),
          fc.oneof(
            fc.bigInt({ min: -(10n ** 400n), max: 10n ** 400n }).map(String),
            fc.constantFrom('1e999999', '-1e999999', '1e-999999', '0.0000000000000000000000001', '-0', '1E+2'),
          ),
        )
        .map(([key, number]) => ({ contentType: 'application/json', payload: `{"${key}": ${number}}` })),
    },
    {
      // Deep nesting, arrays and objects.
      weight: 1,
      arbitrary: fc.tuple(fc.integer({ min: 1, max: 4000 }), fc.boolean()).map(([depth, arrays]) => ({
        contentType: 'application/json',
        payload: arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
      })),
    },
    {
      // Form bodies with odd encodings: repeated keys, bad escapes, bare keys.
      weight: 1,
      arbitrary: fc
        .array(
          fc.tuple(
            fc.constantFrom(...Object.keys(fields), 'x', ''),
            fc.oneof(asciiText(40), fc.constantFrom('%', '%zz', '%E0%A4%A', '+', '=', '&&', '%00')),
          ),
          { maxLength: 6 },
        )
        .map((pairs) => ({
          contentType: 'application/x-www-form-urlencoded',
          payload: pairs.map(([key, value]) => `${key}=${value}`).join('&'),
        })),
    },
    { weight: 1, arbitrary: fc.constant({ contentType: undefined, payload: undefined }) },
  );
};

// ---------------------------------------------------------------- routes

const grantType = fc.constantFrom(
  'password',
  'refresh_token',
  'client_credentials',
  'PASSWORD',
  '',
  'authorization_code',
);
const usernameValue = fc.oneof(fc.constant(VICTIM), anyText(70), fc.stringMatching(/^[a-z]{1,10}$/));
const passwordValue = fc.oneof(anyText(40), fc.string({ minLength: 8, maxLength: 30 }));

const ROUTES: Route[] = [
  { method: 'GET', path: '/healthz', kind: 'problem', auth: 'none' },
  { method: 'GET', path: '/readyz', kind: 'problem', auth: 'none' },
  { method: 'GET', path: '/.well-known/openid-configuration', kind: 'problem', auth: 'none' },
  { method: 'GET', path: '/.well-known/oauth-authorization-server', kind: 'problem', auth: 'none' },
  { method: 'GET', path: '/.well-known/jwks.json', kind: 'problem', auth: 'none' },
  {
    method: 'POST',
    path: '/v1/users',
    kind: 'problem',
    auth: 'none',
    fields: { username: fc.oneof(anyText(70), fc.stringMatching(/^[a-z]{1,10}$/)), password: passwordValue },
    valid: fc.record({
      username: fc.oneof(
        fc.stringMatching(/^[a-z0-9._-]{8,30}$/),
        fc.string({ unit: 'grapheme', minLength: 8, maxLength: 20 }),
      ),
      password: fc.string({ minLength: 12, maxLength: 60 }),
    }),
  },
  {
    method: 'POST',
    path: '/oauth/token',
    kind: 'oauth',
    auth: 'none',
    fields: {
      grant_type: grantType,
      username: usernameValue,
      password: passwordValue,
      refresh_token: tokenText,
      scope: anyText(20),
      client_id: fc.constantFrom('tessera', 'other', ''),
    },
    // Rotating the fuzzing user's refresh token, or logging it in again, moves its session on.
    destructive: true,
    valid: fc.oneof(
      fc.constant({ grant_type: 'password', username: FUZZER, password: CURRENT_PASSWORD }),
      fc.constant({ grant_type: 'password', username: FUZZER, password: CURRENT_PASSWORD, client_id: 'tessera' }),
      fc.constant({ grant_type: 'refresh_token', refresh_token: VALID_REFRESH }),
    ),
  },
  {
    method: 'POST',
    path: '/oauth/revoke',
    kind: 'oauth',
    auth: 'none',
    destructive: true,
    fields: {
      token: tokenText,
      token_type_hint: fc.constantFrom('refresh_token', 'access_token', 'x'),
      client_id: fc.constantFrom('tessera', 'other'),
    },
    valid: fc.record(
      { token: fc.constantFrom(VALID_REFRESH, VALID_ACCESS), token_type_hint: fc.constant('refresh_token') },
      { requiredKeys: ['token'] },
    ),
  },
  {
    method: 'POST',
    path: '/oauth/introspect',
    kind: 'oauth',
    auth: 'client',
    fields: {
      token: tokenText,
      token_type_hint: fc.constantFrom('refresh_token', 'access_token', 'x'),
      client_id: fc.constantFrom(SERVICE_ID, 'other', ''),
      client_secret: fc.constantFrom(SERVICE_SECRET, 'wrong', ''),
    },
    valid: fc.oneof(
      fc.record({ token: fc.constantFrom(VALID_REFRESH, VALID_ACCESS) }),
      fc.record({
        token: fc.oneof(fc.constantFrom(VALID_REFRESH, VALID_ACCESS), tokenText),
        client_id: fc.constant(SERVICE_ID),
        client_secret: fc.constant(SERVICE_SECRET),
      }),
    ),
  },
  { method: 'GET', path: '/v1/me', kind: 'problem', auth: 'bearer' },
  { method: 'GET', path: '/v1/me/audit', kind: 'problem', auth: 'bearer' },
  {
    method: 'POST',
    path: '/v1/me/password',
    kind: 'problem',
    auth: 'bearer',
    destructive: true,
    fields: { currentPassword: fc.oneof(fc.constant(CURRENT_PASSWORD), passwordValue), newPassword: passwordValue },
    valid: fc.record({
      currentPassword: fc.constant(CURRENT_PASSWORD),
      newPassword: fc.oneof(
        fc.string({ minLength: 12, maxLength: 40 }),
        fc.string({ unit: 'grapheme', minLength: 12, maxLength: 20 }),
      ),
    }),
  },
  { method: 'GET', path: '/v1/sessions', kind: 'problem', auth: 'bearer' },
  { method: 'DELETE', path: '/v1/sessions', kind: 'problem', auth: 'bearer', destructive: true },
  { method: 'DELETE', path: '/v1/sessions/{id}', kind: 'problem', auth: 'bearer', destructive: true },
  { method: 'GET', path: '/v1/revocations', kind: 'problem', auth: 'basic' },
];

const sessionIdParam = fc.oneof(
  fc.constant(VALID_SID),
  fc.uuid(),
  anyText(60).map(percentEncode),
  fc.constantFrom('..', '.', '%2e%2e', '%2F', 'null', '00000000-0000-0000-0000-000000000000', "'%20OR%201%3D1%20--"),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,300}$/),
);

// ---------------------------------------------------------------- the suite

describe('fuzzing every route: never a 5xx, always the documented error shape (sqlite)', () => {
  let t: TestApp;
  let victimName: string;
  /** A user the fuzzer acts as, with a live session. */
  const me = { username: '', password: '', access: '', refresh: '', sid: '', stale: true };
  let requests = 0;
  /** Status codes seen per route: the fuzzer must reach past validation, not only bounce off it. */
  const statuses = new Map<string, Map<number, number>>();

  before(async () => {
    t = await startTestApp('sqlite', { env: { SERVICE_CREDENTIALS: `${SERVICE_ID}:${SERVICE_SECRET}` } });
    victimName = (await registerAndLogin(t.app, `victim-${randomBytes(4).toString('hex')}`)).username;
    const user = await registerAndLogin(t.app, `fuzzer-${randomBytes(4).toString('hex')}`);
    me.username = user.username;
    me.password = user.password;
  });
  after(() => t?.close());

  /** A live session of the fuzzing user (a new login after a route may have ended it). */
  async function session(): Promise<typeof me> {
    if (me.stale) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: me.username, password: me.password },
      });
      assert.equal(res.statusCode, 200, `re-login: ${res.body}`);
      const body = res.json();
      Object.assign(me, {
        access: body.access_token,
        refresh: body.refresh_token,
        sid: String(decodeJwt(body.access_token).sid),
        stale: false,
      });
    }
    return me;
  }

  /** Replaces the placeholders in `text`, each live value encoded for `where` it goes. */
  async function substitute(text: string, where: 'raw' | 'json' | 'form' | 'path' = 'raw'): Promise<string> {
    if (!text.match(PLACEHOLDER)) return text;
    const live = await session();
    const values: Record<string, string> = {
      [VALID_BEARER]: `Bearer ${live.access}`,
      [VALID_BASIC]: `Basic ${Buffer.from(`${SERVICE_ID}:${SERVICE_SECRET}`).toString('base64')}`,
      [VALID_REFRESH]: live.refresh,
      [VALID_ACCESS]: live.access,
      [VALID_SID]: live.sid,
      [CURRENT_PASSWORD]: live.password,
      [FUZZER]: live.username,
      [VICTIM]: victimName,
    };
    const encode = {
      raw: (value: string) => value,
      json: (value: string) => JSON.stringify(value).slice(1, -1),
      form: percentEncode,
      path: percentEncode,
    }[where];
    return text.replaceAll(PLACEHOLDER, (name) => (name in values ? encode(values[name]!) : name));
  }

  interface Sent {
    method: string;
    url: string;
    headers: Record<string, string>;
    payload?: string | Buffer;
  }

  async function send(sent: Sent): Promise<LightMyRequestResponse> {
    requests += 1;
    return t.app.inject(sent as InjectOptions);
  }

  /** The properties every response must have. */
  function check(route: Route | null, sent: Sent, res: LightMyRequestResponse): void {
    const what = () =>
      `${sent.method} ${sent.url.slice(0, 200)} headers=${JSON.stringify(sent.headers).slice(0, 300)} body=${String(
        sent.payload ?? '',
      ).slice(0, 200)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
    assert.ok(res.statusCode < 500, `5xx: ${what()}`);
    assert.ok(res.statusCode >= 200, `status: ${what()}`);

    const id = res.headers['x-request-id'];
    assert.equal(typeof id, 'string', `x-request-id missing: ${what()}`);
    assert.match(String(id), REQUEST_ID, `x-request-id malformed: ${what()}`);
    const sentId = sent.headers['x-request-id'];
    if (sentId !== undefined && REQUEST_ID.test(sentId)) assert.equal(id, sentId, `x-request-id not kept: ${what()}`);

    if (res.statusCode < 400 || sent.method === 'HEAD') return;
    const type = String(res.headers['content-type'] ?? '');
    let body: any;
    try {
      body = res.json();
    } catch {
      assert.fail(`error body is not JSON: ${what()}`);
    }
    if (route?.kind === 'oauth') {
      assert.match(type, /^application\/json/, `content-type: ${what()}`);
      assert.equal(typeof body.error, 'string', `no error: ${what()}`);
      assert.equal(typeof body.error_description, 'string', `no error_description: ${what()}`);
      assert.equal(res.headers['cache-control'], 'no-store', `OAuth error without no-store: ${what()}`);
      if (res.statusCode === 401) assert.equal(body.error, 'invalid_client', what());
    } else {
      assert.equal(type, 'application/problem+json; charset=utf-8', `content-type: ${what()}`);
      assert.ok(PROBLEM_CODES.has(body.code), `code not in the closed list: ${what()}`);
      assert.equal(body.status, res.statusCode, `status field: ${what()}`);
      assert.equal(typeof body.title, 'string', what());
      assert.equal(body.requestId, id, `requestId: ${what()}`);
      if (res.statusCode === 401 && route?.auth === 'bearer') {
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="tessera"/, what());
      }
      if (res.statusCode === 401 && route?.auth === 'basic') {
        assert.equal(res.headers['www-authenticate'], 'Basic realm="tessera"', what());
      }
    }
  }

  it('the route list covers every operation in the OpenAPI document', async () => {
    const doc = (await t.app.inject({ url: '/docs/json' })).json();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const fuzzed = ROUTES.map((route) => `${route.method} ${route.path}`).sort();
    assert.deepEqual(fuzzed, documented, 'a new route needs a place in this fuzz suite');
  });

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: random body, query, path and headers`, async () => {
      const hasBody = route.method === 'POST';
      await assertProperty(
        fc.asyncProperty(
          fc.record({
            auth: authorization(route.auth),
            requestId,
            extra: extraHeaders,
            query: queryString,
            id: sessionIdParam,
            body: hasBody ? bodyFor(route) : fc.constant({ contentType: undefined, payload: undefined } as BodySpec),
          }),
          async ({ auth, requestId: rid, extra, query, id, body }) => {
            const headers: Record<string, string> = {};
            for (const [name, value] of Object.entries(extra)) headers[name] = value;
            if (auth !== undefined) headers.authorization = await substitute(auth);
            if (rid !== undefined) headers['x-request-id'] = rid;
            if (body.contentType !== undefined) headers['content-type'] = body.contentType;
            const path = route.path.replace('{id}', await substitute(id, 'path'));
            const sent: Sent = {
              method: route.method,
              url: query ? `${path}?${query}` : path,
              headers,
              ...(body.payload === undefined
                ? {}
                : {
                    payload:
                      typeof body.payload === 'string'
                        ? await substitute(body.payload, body.contentType?.includes('form') ? 'form' : 'json')
                        : body.payload,
                  }),
            };
            const res = await send(sent);
            check(route, sent, res);
            const key = `${route.method} ${route.path}`;
            const counts = statuses.get(key) ?? new Map<number, number>();
            counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
            statuses.set(key, counts);
            if (route.destructive && res.statusCode < 300) {
              if (route.path === '/v1/me/password') {
                // The password did change: follow it (the body was JSON or a form).
                const fields =
                  typeof sent.payload === 'string' && sent.headers['content-type']?.includes('form')
                    ? Object.fromEntries(new URLSearchParams(sent.payload))
                    : JSON.parse(String(sent.payload));
                me.password = fields.newPassword;
              }
              me.stale = true;
            }
          },
        ),
      );
    });
  }

  it('any method on any path, known or not', async () => {
    const paths = [
      ...ROUTES.map((route) => route.path.replace('{id}', '00000000-0000-4000-8000-000000000000')),
      '/docs',
      '/docs/json',
      '/docs/yaml',
      '/docs/static/index.html',
      '/',
      '/v1',
      '/v2/me',
      '/oauth',
      '/.well-known/',
      '/v1/me/',
      '//v1//me',
      '/V1/ME',
      '/v1/me/password/x',
    ];
    await assertProperty(
      fc.asyncProperty(
        fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
        fc.oneof(
          fc.constantFrom(...paths),
          fc.array(anyText(20).map(percentEncode), { maxLength: 4 }).map((segments) => `/${segments.join('/')}`),
        ),
        queryString,
        authorization('bearer'),
        requestId,
        fc.option(headerText(40)),
        async (method, path, query, auth, rid, origin) => {
          const headers: Record<string, string> = {};
          if (auth !== undefined) headers.authorization = await substitute(auth);
          if (rid !== undefined) headers['x-request-id'] = rid;
          if (origin !== null) {
            headers.origin = origin;
            headers['access-control-request-method'] = method;
          }
          const sent: Sent = { method, url: query ? `${path}?${query}` : path, headers };
          if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
            sent.headers['content-type'] = 'application/json';
            sent.payload = '{}';
          }
          const res = await send(sent);
          // Errors take the OAuth shape only on a matched OAuth route; a 404/405 elsewhere is problem details.
          check(ROUTES.find((r) => r.path === path && r.method === method) ?? null, sent, res);
        },
      ),
      RUNS * 2,
    );
  });

  it('a malformed percent-encoding in the path also gets problem details and an x-request-id', async () => {
    for (const url of ['/v1/sessions/%E0%A4%A', '/v1/me%', '/%zz', '/oauth/token%', '/.well-known/%c0%af']) {
      for (const method of ['GET', 'POST', 'DELETE'] as const) {
        const sent: Sent = { method, url, headers: { 'x-request-id': 'bad-url-check' } };
        check(null, sent, await send(sent));
      }
    }
  });

  it('the fuzzer reached every route’s success path and its error paths', () => {
    if (process.env.FUZZ_DEBUG) for (const [key, counts] of statuses) console.log(key, Object.fromEntries(counts));
    const seen = (key: string, predicate: (status: number) => boolean) =>
      [...(statuses.get(key) ?? new Map()).keys()].some(predicate);
    for (const route of ROUTES) {
      const key = `${route.method} ${route.path}`;
      assert.ok(
        seen(key, (status) => status < 300),
        `${key}: no success in ${RUNS} runs`,
      );
      if (route.auth === 'bearer' || route.auth === 'basic' || route.auth === 'client') {
        assert.ok(
          seen(key, (status) => status === 401),
          `${key}: never refused`,
        );
      }
      if (route.method === 'POST')
        assert.ok(
          seen(key, (status) => status === 400),
          `${key}: never a 400`,
        );
    }
  });

  it('afterwards the service still serves: health, readiness, a real registration and login', async () => {
    assert.ok(requests > ROUTES.length * RUNS, `ran ${requests} requests`);
    assert.equal((await t.app.inject({ url: '/healthz' })).statusCode, 200);
    const ready = await t.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    const user = await registerAndLogin(t.app, `after-fuzz-${randomBytes(4).toString('hex')}`);
    const res = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().username, user.username);
    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
    });
    assert.equal(refreshed.statusCode, 200);
    // The fuzzing user, too, can still log in with whatever password it now has.
    me.stale = true;
    await session();
  });
});
