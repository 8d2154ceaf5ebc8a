// A real tessera on loopback for the downstream example's tests, and the few
// HTTP calls a user makes against it. Not a *.test.ts file: the runner skips it.
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import { buildApp } from '../../../src/app.js';
import type { Config } from '../../../src/config.js';
import { testConfig } from '../../../test/helpers/app.js';
import { createTestDatabase } from '../../../test/helpers/databases.js';
import { freePort } from '../../../test/helpers/http.js';

export const AUDIENCE = 'orders-api';
export const SERVICE_ID = 'downstream';
/** At least 32 characters, as tessera requires of service secrets. */
export const SERVICE_SECRET = randomBytes(32).toString('base64url');

const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A request tessera answered, recorded by a hook on the real app. */
export interface SeenRequest {
  path: string;
  query: URLSearchParams;
  status: number;
}

/** A running tessera: the real app from src/app.ts on a SQLite file, listening on 127.0.0.1. */
export interface Tessera {
  readonly app: FastifyInstance;
  readonly issuer: string;
  readonly config: Config;
  /** Every request tessera answered, in order (JWKS fetches, feed polls…). */
  readonly seen: SeenRequest[];
  /** Stops listening, keeping the database (an outage). */
  stop(): Promise<void>;
  /** Listens again on the same port and database, as a restarted instance would. */
  restart(): Promise<void>;
  /** Stops and deletes the database. */
  close(): Promise<void>;
}

/**
 * Starts tessera with ISSUER on its own loopback port, SERVICE_CREDENTIALS for
 * this example, and a one-second KEY_PUBLISH_LEAD so a rotated key signs
 * within the test.
 */
export async function startTessera(
  options: { env?: Record<string, string>; now?: () => number } = {},
): Promise<Tessera> {
  const database = await createTestDatabase('sqlite');
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = testConfig(database.url, {
    ISSUER: issuer,
    AUDIENCE,
    SERVICE_CREDENTIALS: `${SERVICE_ID}:${SERVICE_SECRET}`,
    KEY_PUBLISH_LEAD: '1',
    ...options.env,
  });
  const seen: SeenRequest[] = [];
  let app: FastifyInstance | null = null;
  const listen = async () => {
    const instance = buildApp(config, options.now ? { now: options.now } : {});
    instance.addHook('onResponse', async (request, reply) => {
      const url = new URL(request.url, issuer);
      seen.push({ path: url.pathname, query: url.searchParams, status: reply.statusCode });
    });
    await instance.listen({ host: '127.0.0.1', port });
    app = instance;
  };
  await listen();
  return {
    get app() {
      if (!app) throw new Error('tessera is stopped');
      return app;
    },
    issuer,
    config,
    seen,
    stop: async () => {
      await app?.close();
      app = null;
    },
    restart: listen,
    close: async () => {
      await app?.close();
      app = null;
      await database.drop();
    },
  };
}

/** A user's tokens, from tessera's token endpoint. */
export interface Login {
  userId: string;
  username: string;
  password: string;
  accessToken: string;
  refreshToken: string;
}

/** Logs in over HTTP (`grant_type=password`). */
export async function login(issuer: string, username: string, password: string, userId = ''): Promise<Login> {
  const response = await fetch(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }),
  });
  const body = (await response.json()) as { access_token: string; refresh_token: string };
  if (response.status !== 200) throw new Error(`login failed: ${response.status} ${JSON.stringify(body)}`);
  return { userId, username, password, accessToken: body.access_token, refreshToken: body.refresh_token };
}

/** Registers a new user and logs in, over HTTP. */
export async function registerAndLogin(issuer: string): Promise<Login> {
  const username = `user-${randomBytes(5).toString('hex')}`;
  const password = 'correct horse battery staple';
  const response = await fetch(`${issuer}/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await response.json()) as { id: string };
  if (response.status !== 201) throw new Error(`registration failed: ${response.status} ${JSON.stringify(body)}`);
  return login(issuer, username, password, body.id);
}

/** A key whose private half the test holds and whose public half tessera publishes in its JWKS. */
export interface PublishedTestKey {
  kid: string;
  privateKey: KeyObject;
  /** Signs `claims` with this key; `header` adds to or overrides `{alg: RS256, typ: at+jwt, kid}`. */
  sign(claims: JWTPayload, header?: Record<string, unknown>): Promise<string>;
}

/**
 * Imports a fresh RSA key into tessera (`tessera keys import`): it is
 * published as the `next` key. Tokens the test signs with it carry genuine
 * signatures of a published key, so each forged token below differs from an
 * acceptable one in exactly the attribute under test.
 */
export async function publishTestKey(tessera: Tessera): Promise<PublishedTestKey> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { kid } = await tessera.app.keyStore.importPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  return {
    kid,
    privateKey,
    // Signed with node:crypto rather than jose's SignJWT, which refuses to produce some of
    // the headers under test (an unknown `crit`, for one).
    sign: async (claims, header = {}) => {
      const input = `${b64url({ alg: 'RS256', typ: 'at+jwt', kid, ...header })}.${b64url(claims)}`;
      return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    },
  };
}

/** The kid and claims of a token, for forging variants of it. */
export function inspect(token: string): { kid: string; claims: JWTPayload } {
  return { kid: String(decodeProtectedHeader(token).kid), claims: decodeJwt(token) };
}
