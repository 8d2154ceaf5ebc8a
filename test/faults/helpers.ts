// Shared machinery of the fault tests: the real service as a child process,
// raw HTTP with precise failure reporting, a TCP proxy that can cut the
// database off, and plain SQL on either database.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { providerOf, sqliteFilePath } from '../../src/db/migrate.js';
import { TEST_KEY_ENCRYPTION_SECRET } from '../helpers/app.js';
import { freePort } from '../helpers/http.js';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(projectRoot, 'bin/tessera-dev.ts');
const tsx = import.meta.resolve('tsx');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// The real service as a child process
// ---------------------------------------------------------------------------

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when the process was seen to exit. */
  at: number;
}

export interface TesseraProcess {
  readonly port: number;
  readonly base: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** Sends a signal (no-op once exited). */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<Exit>;
}

/** Every child started by {@link startTessera} that has not exited yet. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort if an `after` hook never ran: no orphan servers.
  for (const child of running) child.kill('SIGKILL');
});

/** Kills every child still running (for `after` hooks). */
export async function killAllTessera(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** The environment of a test instance: cheap argon2, no rate limits, no load shedding, warnings only. */
export function tesseraEnv(
  databaseUrl: string,
  port: number,
  env: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    KEY_ENCRYPTION_SECRET: TEST_KEY_ENCRYPTION_SECRET,
    ISSUER: `http://127.0.0.1:${port}`,
    ARGON2_MEMORY_COST: '1024',
    ARGON2_TIME_COST: '1',
    RATE_LIMIT_TOKEN: '0',
    RATE_LIMIT_REGISTER: '0',
    RATE_LIMIT_PASSWORD: '0',
    MAX_EVENT_LOOP_DELAY: '0',
    LOG_LEVEL: 'warn',
    ...env,
  };
}

/**
 * Starts `tessera serve` from the TypeScript sources, as `npm run dev` does,
 * and waits for GET /readyz = 200. The working directory is an empty temp
 * folder, so no `.env` of the developer's leaks in.
 */
export async function startTessera(options: {
  databaseUrl: string;
  port?: number;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}): Promise<TesseraProcess> {
  const port = options.port ?? (await freePort());
  const cwd = mkdtempSync(join(tmpdir(), 'tessera-fault-cwd-'));
  const child = spawn(process.execPath, ['--import', tsx, cli, 'serve'], {
    cwd,
    env: tesseraEnv(options.databaseUrl, port, options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code, signal, at: performance.now() });
    });
  });
  const base = `http://127.0.0.1:${port}`;
  const proc: TesseraProcess = {
    port,
    base,
    child,
    output: () => output,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    kill: async () => {
      proc.signal('SIGKILL');
      return exited;
    },
  };
  const deadline = performance.now() + (options.readyTimeoutMs ?? 60_000);
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(`tessera exited before it was ready:\n${output}`);
    // The CLI reports a fatal error as "tessera: …" (src/cli.ts); a failed start
    // may linger before it exits, so do not wait for that.
    if (/^tessera:/m.test(output)) {
      await proc.kill();
      throw new Error(`tessera failed to start:\n${output}`);
    }
    try {
      const res = await request(`${base}/readyz`, { timeoutMs: 2000 });
      if (res.status === 200) return proc;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      await proc.kill();
      throw new Error(`tessera did not become ready within ${options.readyTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed JSON body, or undefined. */
  body: any;
  /** Milliseconds from the call to the end of the response. */
  ms: number;
}

/** A request that got no HTTP response: `code` is the socket error (ECONNRESET, ECONNREFUSED, TIMEOUT, …). */
export class HttpFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** Whether the whole request had been written to the socket. */
    readonly sent: boolean,
    readonly ms: number,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  method?: string;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  /** Sent as application/json. */
  json?: unknown;
  headers?: Record<string, string>;
  /** false: a new connection for this request only. Default: a keep-alive agent shared by the tests. */
  agent?: http.Agent | false;
  /** Rejects with code TIMEOUT after this long (default 30 s). */
  timeoutMs?: number;
  /** Called once the request has been fully written to the socket. */
  onSent?: () => void;
}

const sharedAgent = new http.Agent({ keepAlive: true, maxSockets: 128 });

/**
 * One HTTP request over node:http (no retries, no pooling surprises): resolves
 * with any HTTP response, rejects with an {@link HttpFailure} when none came.
 */
export function request(url: string, options: RequestOptions = {}): Promise<HttpResponse> {
  const started = performance.now();
  let payload: string | undefined;
  const headers: Record<string, string> = { ...options.headers };
  if (options.form) {
    payload = new URLSearchParams(options.form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  } else if (options.json !== undefined) {
    payload = JSON.stringify(options.json);
    headers['content-type'] = 'application/json';
  }
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  const method = options.method ?? (payload === undefined ? 'GET' : 'POST');
  return new Promise((resolve, reject) => {
    let sent = false;
    let settled = false;
    const fail = (code: string, message: string) => {
      if (settled) return;
      settled = true;
      reject(new HttpFailure(`${method} ${url}: ${message}`, code, sent, performance.now() - started));
    };
    const req = http.request(
      url,
      {
        method,
        headers,
        agent: options.agent === undefined ? sharedAgent : options.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'ERROR', error.message));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: any;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, ms: performance.now() - started });
        });
      },
    );
    const timer = setTimeout(() => {
      fail('TIMEOUT', `no response within ${options.timeoutMs ?? 30_000} ms`);
      req.destroy();
    }, options.timeoutMs ?? 30_000);
    req.on('finish', () => {
      sent = true;
      options.onSent?.();
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(error.code ?? 'ERROR', error.message);
    });
    req.end(payload);
  });
}

/** The first response on a raw connection, or why there was none. */
export type RawResponse = { status: number; headers: Record<string, string>; body: string } | { error: string };

/**
 * A raw HTTP/1.1 connection, for requests written in pieces (a slow client).
 * `response()` resolves with the first response on the connection.
 */
export async function rawConnection(port: number): Promise<{
  socket: net.Socket;
  write(text: string): void;
  response(): Promise<RawResponse>;
}> {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  const response = new Promise<RawResponse>((resolve) => {
    const parse = () => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const [statusLine = '', ...lines] = received.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      const body = received.slice(end + 4);
      if (Buffer.byteLength(body) < length) return false;
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
      return true;
    };
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      parse();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    socket.on('close', () => {
      if (!parse()) resolve({ error: received ? `incomplete response: ${received}` : 'closed without a response' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, write: (text) => socket.write(text), response: () => response };
}

/** Registers a user over HTTP; throws unless 201. */
export async function register(base: string, username: string, password = 'correct horse battery staple') {
  const res = await request(`${base}/v1/users`, { json: { username, password } });
  if (res.status !== 201) throw new Error(`registration of ${username} failed: ${res.status} ${res.text}`);
  return res.body as { id: string; username: string };
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
}

/** Password grant over HTTP; throws unless 200. */
export async function login(base: string, username: string, password = 'correct horse battery staple') {
  const res = await request(`${base}/oauth/token`, { form: { grant_type: 'password', username, password } });
  if (res.status !== 200) throw new Error(`login of ${username} failed: ${res.status} ${res.text}`);
  return res.body as Tokens;
}

/** The claims of a JWT, unverified (tests only read what they just received). */
export function claimsOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

// ---------------------------------------------------------------------------
// A TCP proxy that can cut the database off
// ---------------------------------------------------------------------------

/**
 * How a cut behaves for new connections:
 * - `refuse`: accepted and reset at once (the database host is up, the server is not);
 * - `blackhole`: accepted and never answered (a partition, a dead host);
 * - `stall`: like `blackhole`, and the connections already open are frozen
 *   instead of closed (they stop forwarding but stay up: a silent database).
 */
export type CutMode = 'refuse' | 'blackhole' | 'stall';

interface Pipe {
  client: net.Socket;
  upstream: net.Socket;
}

/**
 * A TCP proxy between tessera and the real database server. `cut()` ends
 * (or, for `stall`, freezes) every open connection and stops passing new ones;
 * `restore()` lets traffic through again.
 */
export class TcpProxy {
  #server: net.Server;
  #pipes = new Set<Pipe>();
  #held = new Set<net.Socket>();
  #mode: CutMode | 'open' = 'open';
  /** Connections accepted since the start, by what happened to them. */
  readonly stats = { forwarded: 0, refused: 0, blackholed: 0 };

  private constructor(
    private readonly target: { host: string; port: number },
    server: net.Server,
    readonly port: number,
  ) {
    this.#server = server;
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const proxy = new TcpProxy(target, server, typeof address === 'object' && address ? address.port : 0);
    server.on('connection', (socket) => proxy.#accept(socket));
    return proxy;
  }

  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  get mode(): CutMode | 'open' {
    return this.#mode;
  }

  /** Open connections currently passing traffic (or frozen, during a stall). */
  get openConnections(): number {
    return this.#pipes.size;
  }

  #accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.#mode === 'refuse') {
      this.stats.refused += 1;
      client.resetAndDestroy();
      return;
    }
    if (this.#mode === 'blackhole' || this.#mode === 'stall') {
      this.stats.blackholed += 1;
      this.#held.add(client);
      client.on('close', () => this.#held.delete(client));
      // Read and drop: the client believes it is talking to someone.
      client.on('data', () => {});
      return;
    }
    this.stats.forwarded += 1;
    const upstream = net.connect(this.target.port, this.target.host);
    const pipe = { client, upstream };
    this.#pipes.add(pipe);
    upstream.on('error', () => {});
    const end = () => {
      this.#pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Cuts the database off (see {@link CutMode}). */
  cut(mode: CutMode): void {
    this.#mode = mode;
    for (const pipe of this.#pipes) {
      if (mode === 'stall') {
        // Stop forwarding in both directions; bytes wait in the buffers.
        pipe.client.unpipe(pipe.upstream);
        pipe.upstream.unpipe(pipe.client);
        pipe.client.pause();
        pipe.upstream.pause();
      } else {
        pipe.client.destroy();
        pipe.upstream.destroy();
      }
    }
  }

  /** Lets traffic through again: frozen connections resume, black-holed ones are closed. */
  restore(): void {
    const stalled = this.#mode === 'stall';
    this.#mode = 'open';
    for (const socket of this.#held) socket.destroy();
    this.#held.clear();
    if (stalled) {
      for (const pipe of this.#pipes) {
        pipe.client.pipe(pipe.upstream);
        pipe.upstream.pipe(pipe.client);
        pipe.client.resume();
        pipe.upstream.resume();
      }
    }
  }

  async close(): Promise<void> {
    for (const pipe of this.#pipes) {
      pipe.client.destroy();
      pipe.upstream.destroy();
    }
    for (const socket of this.#held) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------
// Plain SQL on either database
// ---------------------------------------------------------------------------

/**
 * Runs one SQL statement on the database (`?` placeholders on SQLite, `$1`
 * on PostgreSQL) through a connection of its own, and returns the rows.
 */
export async function sql<T = Record<string, any>>(
  databaseUrl: string,
  statement: string,
  params: unknown[] = [],
  options: { readonly?: boolean } = {},
): Promise<T[]> {
  if (providerOf(databaseUrl) === 'sqlite') {
    const db = new Sqlite(sqliteFilePath(databaseUrl), { readonly: options.readonly ?? false, timeout: 5000 });
    try {
      const prepared = db.prepare(statement);
      if (prepared.reader) return prepared.all(...params) as T[];
      prepared.run(...params);
      return [];
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const result = await client.query(statement, params);
    return result.rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}
