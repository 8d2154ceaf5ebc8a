// The browser demo, end to end: a real tessera (src/app.ts, SQLite, cookie
// mode) and the demo server on loopback, driven by Debian's Chromium through
// playwright-core. Every step is checked on what the page shows and on what
// the browser stores.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { buildApp } from '../../../src/app.js';
import { testConfig } from '../../../test/helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/databases.js';
import { freePort } from '../../../test/helpers/http.js';
import { buildWebDemo } from '../web-demo.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ACCESS_TOKEN_TTL = 30;
/** The page refreshes 27 s before expiry: 3 s after each token arrives. */
const REFRESH_BEFORE_EXPIRY = 27;
const COOKIE = 'tessera_refresh';
const username = `web-${Date.now().toString(36)}`;
const password = 'a long browser demo passphrase';
// UPDATE_SCREENSHOT=1 refreshes the picture the README shows; otherwise it goes to a temporary folder.
const screenshotPath =
  process.env.UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../screenshot.png', import.meta.url))
    : join(mkdtempSync(join(tmpdir(), 'tessera-web-')), 'screenshot.png');

/** The little of the page's globals the test reads (this project compiles without the DOM library). */
interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null };
}

/** A token-endpoint or revocation call tessera answered. */
interface OAuthCall {
  path: string;
  grant: string | undefined;
  status: number;
}

let database: TestDatabase;
let tessera: FastifyInstance;
let web: FastifyInstance;
let tesseraUrl: string;
let webUrl: string;
let browser: Browser;
let context: BrowserContext;
const calls: OAuthCall[] = [];
const pageErrors: string[] = [];

before(async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: apt-get install chromium (as .ci/run does), or set CHROMIUM_PATH`,
  );
  database = await createTestDatabase('sqlite');
  const [tesseraPort, webPort] = [await freePort(), await freePort()];
  // `localhost`, not 127.0.0.1: the origin people develop on, where browsers accept Secure cookies over http.
  tesseraUrl = `http://localhost:${tesseraPort}`;
  webUrl = `http://localhost:${webPort}`;
  tessera = buildApp(
    testConfig(database.url, {
      ISSUER: tesseraUrl,
      AUDIENCE: 'orders-api',
      REFRESH_TOKEN_COOKIE: 'true',
      ALLOWED_ORIGINS: webUrl,
      ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      // No grace for a replayed refresh token: only the page's own coordination keeps two tabs alive.
      REFRESH_REUSE_GRACE: '0',
    }),
  );
  tessera.addHook('onResponse', async (request, reply) => {
    if (!request.url.startsWith('/oauth/')) return;
    const body = request.body as { grant_type?: string } | undefined;
    calls.push({ path: request.url, grant: body?.grant_type, status: reply.statusCode });
  });
  await tessera.listen({ host: '127.0.0.1', port: tesseraPort });
  web = buildWebDemo({
    issuer: tesseraUrl,
    audience: 'orders-api',
    refreshBeforeExpirySeconds: REFRESH_BEFORE_EXPIRY,
  }).app;
  await web.listen({ host: '127.0.0.1', port: webPort });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    // Without these, Chromium keeps calling Google's services, which this network refuses.
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: { width: 900, height: 760 } });
});

after(async () => {
  await browser?.close();
  await web?.close();
  await tessera?.close();
  await database?.drop();
});

async function openTab(): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    // Chromium logs every 4xx a fetch gets; the page expects some (a first visit has no cookie to refresh with).
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      pageErrors.push(message.text());
    }
  });
  await page.goto(webUrl);
  await page.waitForSelector('#status[data-ready="true"]');
  return page;
}

const statusOf = (page: Page) => page.getAttribute('#status', 'data-state');
const jtiOf = (page: Page) => page.getAttribute('#token', 'data-jti');
const refreshesIn = async (page: Page) => Number(await page.textContent('#refreshes'));
const successfulRefreshes = () => calls.filter((call) => call.grant === 'refresh_token' && call.status === 200).length;

async function callApi(page: Page): Promise<{ status: number; body: Record<string, unknown> }> {
  // The click handler marks the result pending before it calls the API.
  await page.click('#call-api');
  await page.waitForSelector('#api-result[data-state="done"]');
  const text = (await page.textContent('#api-result')) ?? '';
  const [status, ...json] = text.split('\n');
  return { status: Number(status), body: JSON.parse(json.join('\n')) };
}

let tabA: Page;
let tabB: Page;
let userId: string;

test('a first visit, with no cookie, shows the sign-in form', async () => {
  tabA = await openTab();
  assert.equal(await statusOf(tabA), 'signed-out');
  assert.ok(await tabA.isVisible('#credentials'));
  assert.ok(await tabA.isHidden('#signed-in'));
});

test('registering creates the account', async () => {
  await tabA.fill('#username', username);
  await tabA.fill('#password', password);
  await tabA.click('#register');
  await tabA.waitForSelector('#message:has-text("created")');
  assert.match((await tabA.textContent('#message')) ?? '', new RegExp(`Account ${username} created`));
});

test('logging in keeps the access token in memory and the refresh token in an HttpOnly cookie', async () => {
  await tabA.click('#login');
  await tabA.waitForSelector('#status[data-state="signed-in"]');
  assert.equal(await tabA.textContent('#status'), `Signed in as ${username}`);
  assert.equal(await tabA.inputValue('#password'), '', 'the password field is cleared');

  const cookies = await context.cookies(`${tesseraUrl}/oauth/token`);
  const refresh = cookies.find((cookie) => cookie.name === COOKIE);
  assert.ok(refresh, 'tessera set the refresh cookie');
  assert.equal(refresh.httpOnly, true);
  assert.equal(refresh.secure, true);
  assert.equal(refresh.sameSite, 'Strict');
  assert.equal(refresh.path, '/oauth');
  // Nothing a script of the page can read holds a token. (An expression string, evaluated by the
  // DevTools protocol, which the page's CSP does not govern.)
  const visible = await tabA.evaluate(
    '({ cookie: document.cookie, local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }) })',
  );
  assert.deepEqual(visible, { cookie: '', local: '{}', session: '{}' });
  const login = calls.find((call) => call.grant === 'password');
  assert.equal(login?.status, 200);
});

test('the page calls the downstream API with the access token', async () => {
  const { status, body } = await callApi(tabA);
  assert.equal(status, 200);
  assert.equal(body.username, username);
  assert.equal(typeof body.sub, 'string');
  userId = String(body.sub);
  assert.match((await tabA.textContent('#user')) ?? '', new RegExp(userId));
});

test('the page refreshes silently before the access token expires', async () => {
  const first = await jtiOf(tabA);
  // The token lives 30 s; the page must replace it 3 s in, long before it expires.
  // A function, not a string: the page's CSP forbids eval, which string predicates need.
  await tabA.waitForFunction(
    () => Number((globalThis as unknown as PageGlobals).document.getElementById('refreshes')?.textContent) >= 1,
    undefined,
    { timeout: 10_000 },
  );
  assert.notEqual(await jtiOf(tabA), first);
  assert.equal(await statusOf(tabA), 'signed-in');
  assert.equal((await callApi(tabA)).status, 200);
});

test('a second tab signs in from the cookie, and two tabs refreshing at once keep the session', async () => {
  tabB = await openTab();
  assert.equal(await statusOf(tabB), 'signed-in', 'the new tab restored the session from the cookie');
  // Tab B's refresh reached tab A over the BroadcastChannel: both hold the same token.
  assert.equal(await jtiOf(tabA), await jtiOf(tabB));

  // Both tabs' timers now fire at the same instant every 3 s; add two clicks at once.
  const before = successfulRefreshes();
  const firstCall = calls.length;
  await Promise.all([tabA.click('#refresh-now'), tabB.click('#refresh-now')]);
  await new Promise((resolve) => setTimeout(resolve, 8_000));

  assert.equal(await statusOf(tabA), 'signed-in');
  assert.equal(await statusOf(tabB), 'signed-in');
  assert.ok(successfulRefreshes() > before, 'refreshes went on');
  // With no reuse grace, one token presented twice would have ended the session: none was.
  const refused = calls.slice(firstCall).filter((call) => call.grant === 'refresh_token' && call.status !== 200);
  assert.deepEqual(refused, []);
  // Each refresh was made by exactly one tab, and the other adopted its token.
  assert.equal((await refreshesIn(tabA)) + (await refreshesIn(tabB)), successfulRefreshes());
  assert.equal(await jtiOf(tabA), await jtiOf(tabB));
  assert.equal((await callApi(tabB)).status, 200);
});

test('the page looks right (screenshot)', async () => {
  await callApi(tabA);
  const png = await tabA.screenshot({ fullPage: true });
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  writeFileSync(screenshotPath, png);
});

test('logging out ends the session in tessera and in every tab', async () => {
  const cookieBefore = (await context.cookies(`${tesseraUrl}/oauth/token`)).find((cookie) => cookie.name === COOKIE);
  assert.ok(cookieBefore);
  await tabA.click('#logout');
  await tabA.waitForSelector('#status[data-state="signed-out"]');
  await tabB.waitForSelector('#status[data-state="signed-out"]');
  assert.equal(await tabB.textContent('#message'), 'Logged out in another tab.');
  assert.ok(calls.some((call) => call.path === '/oauth/revoke' && call.status === 200));
  const cookiesAfter = await context.cookies(`${tesseraUrl}/oauth/token`);
  assert.equal(
    cookiesAfter.find((cookie) => cookie.name === COOKIE),
    undefined,
  );

  // The session is over in tessera, not only forgotten by the page: the last refresh token is dead.
  const replay = await fetch(`${tesseraUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cookieBefore.value }),
  });
  assert.equal(replay.status, 400);
  assert.equal(((await replay.json()) as { error: string }).error, 'invalid_grant');

  // A reload stays signed out.
  await tabB.reload();
  await tabB.waitForSelector('#status[data-ready="true"]');
  assert.equal(await statusOf(tabB), 'signed-out');
});

test('the page raised no script errors', () => {
  assert.deepEqual(pageErrors, []);
});

test('a page on an origin tessera does not trust cannot use the cookie', async () => {
  // Same machine, other port: same site, so SameSite alone would let the cookie through; the Origin check must not.
  const stranger = await freePort();
  const response = await fetch(`${tesseraUrl}/oauth/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      origin: `http://localhost:${stranger}`,
      cookie: `${COOKIE}=anything`,
    },
    body: new URLSearchParams({ grant_type: 'refresh_token' }),
  });
  assert.equal(response.status, 403);
  // The screenshot is a real picture of the page, not an empty file.
  assert.ok(readFileSync(screenshotPath).length > 10_000);
});
