import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface BenchUser {
  id: string;
  username: string;
  password: string;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
}

async function expectOk(response: Response, what: string): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

/** Registers `count` users through POST /v1/users (each costs one argon2id hash in the service). */
export async function registerUsers(baseUrl: string, count: number): Promise<BenchUser[]> {
  const prefix = `bench-${randomBytes(3).toString('hex')}`;
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const username = `${prefix}-${index}`;
      const password = `${randomBytes(12).toString('base64url')} bench passphrase ${index}`;
      const body = (await expectOk(
        await fetch(`${baseUrl}/v1/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username, password }),
        }),
        `register ${username}`,
      )) as { id: string };
      return { id: body.id, username, password };
    }),
  );
}

/**
 * One password-grant login. A 503 or 429 (the service still draining a
 * flood's hash queue, or shedding load) is retried after its Retry-After, and
 * a failed connection after 200 ms, for up to a minute.
 */
export async function login(baseUrl: string, user: BenchUser): Promise<Tokens> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    let response: Response;
    try {
      response = await fetch(`${baseUrl}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: user.username, password: user.password }),
      });
    } catch (error) {
      // A keep-alive connection the server closed while this process was busy (a synchronous
      // SQLite seed holds its event loop for seconds): fetch learns of the close only on reuse.
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if ((code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') && Date.now() < deadline) {
        await sleep(200);
        continue;
      }
      throw error;
    }
    if ((response.status === 503 || response.status === 429) && Date.now() < deadline) {
      await response.arrayBuffer();
      await sleep(Math.min(5, Number(response.headers.get('retry-after')) || 1) * 1000);
      continue;
    }
    return (await expectOk(response, `login ${user.username}`)) as Tokens;
  }
}

/** `count` fresh sessions (one login each, users round-robin): the first refresh token of each chain. */
export async function freshRefreshTokens(baseUrl: string, users: BenchUser[], count: number): Promise<string[]> {
  const tokens: string[] = [];
  // A few at a time: the service hashes HASH_CONCURRENCY passwords at once anyway.
  for (let start = 0; start < count; start += 8) {
    const batch = Array.from({ length: Math.min(8, count - start) }, (_, offset) => {
      const user = users[(start + offset) % users.length];
      if (!user) throw new Error('no users');
      return login(baseUrl, user);
    });
    for (const result of await Promise.all(batch)) tokens.push(result.refresh_token);
  }
  return tokens;
}

/** The exact bytes of the JWKS, as served. */
export async function fetchJwks(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/.well-known/jwks.json`);
  if (!response.ok) throw new Error(`JWKS: HTTP ${response.status}`);
  return response.text();
}

/** The claims of an access token (no verification: only its shape and size matter here). */
export function decodeClaims(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1];
  if (!payload) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}
