// The tessera browser demo: a page that keeps its access token in memory and
// its refresh token in tessera's HttpOnly cookie (REFRESH_TOKEN_COOKIE=true).
//
// - Log in: POST /oauth/token (password grant) with credentials: 'include';
//   tessera answers the access token and sets the refresh cookie, which no
//   script can read (Path=/oauth, HttpOnly, SameSite=Strict).
// - Refresh: POST /oauth/token (refresh_token grant) with no token in the body;
//   the browser sends the cookie and tessera rotates it.
// - Tabs: every tab of this origin shares the cookie, and a refresh token is
//   single-use (RFC 9700 §4.14.2: a replayed one ends the session), so two
//   tabs refreshing at once would present the same token twice. Refreshes run
//   under one Web Lock, and the tab that refreshed hands the new access token
//   to the others over a BroadcastChannel; a tab that waited for the lock and
//   received a newer token meanwhile does not refresh again.
// - Log out: POST /oauth/revoke ends the session and clears the cookie; the
//   other tabs are told and forget their token.

const config = await (await fetch('/config.json')).json();
const tessera = config.tessera;

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element;
};

/** @type {{accessToken: string, expiresAt: number, obtainedAt: number, claims: Record<string, unknown>} | null} */
let session = null;
let refreshTimer;
let refreshesHere = 0;
const channel = new BroadcastChannel('tessera-demo-session');

/** The claims, for display only: the API verifies the token, the page never needs to. */
function claimsOf(jwt) {
  const payload = jwt.split('.')[1] ?? '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

/** The error text of a tessera answer: OAuth `{error, error_description}` or problem details. */
async function errorOf(response) {
  const body = await response.json().catch(() => ({}));
  return body.error_description ?? body.detail ?? body.title ?? body.error ?? `HTTP ${response.status}`;
}

function say(text, kind = 'info') {
  const message = $('message');
  message.textContent = text;
  message.dataset.kind = kind;
}

function render() {
  const status = $('status');
  $('signed-in').hidden = session === null;
  $('signed-out').hidden = session !== null;
  if (session === null) {
    status.textContent = 'Signed out';
    status.dataset.state = 'signed-out';
    return;
  }
  status.textContent = `Signed in as ${session.claims.username}`;
  status.dataset.state = 'signed-in';
  $('user').textContent = `${session.claims.username} (${session.claims.sub})`;
  const token = $('token');
  token.textContent = `jti …${String(session.claims.jti).slice(-8)}, expires ${new Date(session.expiresAt).toLocaleTimeString()}`;
  token.dataset.jti = String(session.claims.jti);
  $('refreshes').textContent = String(refreshesHere);
}

/** Takes a token response (from this tab or another) as the current session. */
function adopt(tokens, obtainedAt) {
  session = {
    accessToken: tokens.access_token,
    expiresAt: obtainedAt + tokens.expires_in * 1000,
    obtainedAt,
    claims: claimsOf(tokens.access_token),
  };
  scheduleRefresh();
  render();
}

function forget() {
  clearTimeout(refreshTimer);
  session = null;
  $('api-result').textContent = 'Not called yet.';
  render();
}

/** Refreshes ahead of expiry: refreshBeforeExpirySeconds early, but never in the first tenth of the lifetime. */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (session === null) return;
  const lifetime = session.expiresAt - session.obtainedAt;
  const early = Math.min(config.refreshBeforeExpirySeconds * 1000, lifetime * 0.9);
  const delay = Math.max(0, session.expiresAt - early - Date.now());
  refreshTimer = setTimeout(() => {
    refresh().catch((error) => say(`Refresh failed: ${error.message}`, 'error'));
  }, delay);
}

/**
 * Gets a new access token with the refresh cookie, one tab at a time.
 * Resolves true when this tab holds a fresh token, false when the cookie is
 * missing or no longer valid (signed out).
 */
function refresh() {
  const requestedAt = Date.now();
  return navigator.locks.request('tessera-refresh', async () => {
    // Another tab refreshed while this one waited for the lock: its token is ours too.
    if (session !== null && session.obtainedAt >= requestedAt) return true;
    const response = await fetch(`${tessera}/oauth/token`, {
      method: 'POST',
      credentials: 'include',
      body: new URLSearchParams({ grant_type: 'refresh_token' }),
    });
    if (!response.ok) {
      const reason = await errorOf(response);
      if (response.status >= 500 || response.status === 429) throw new Error(reason);
      // No cookie, or a dead one (tessera cleared it): this tab is signed out.
      if (session !== null) say(`Signed out: ${reason}`, 'error');
      forget();
      return false;
    }
    const tokens = await response.json();
    const obtainedAt = Date.now();
    refreshesHere += 1;
    adopt(tokens, obtainedAt);
    channel.postMessage({ type: 'session', tokens, obtainedAt });
    return true;
  });
}

async function logIn(event) {
  event.preventDefault();
  const form = new FormData($('credentials'));
  say('Logging in…');
  const response = await fetch(`${tessera}/oauth/token`, {
    method: 'POST',
    credentials: 'include',
    body: new URLSearchParams({
      grant_type: 'password',
      username: form.get('username'),
      password: form.get('password'),
    }),
  });
  if (!response.ok) return say(await errorOf(response), 'error');
  const tokens = await response.json();
  const obtainedAt = Date.now();
  $('password').value = '';
  adopt(tokens, obtainedAt);
  channel.postMessage({ type: 'session', tokens, obtainedAt });
  say('Logged in.');
}

async function register() {
  const form = $('credentials');
  if (!form.reportValidity()) return;
  const data = new FormData(form);
  say('Registering…');
  const response = await fetch(`${tessera}/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: data.get('username'), password: data.get('password') }),
  });
  if (response.status !== 201) return say(await errorOf(response), 'error');
  const user = await response.json();
  say(`Account ${user.username} created. Log in with it.`);
}

function whoami() {
  return fetch('/v1/whoami', { headers: { authorization: `Bearer ${session?.accessToken ?? ''}` } });
}

async function callApi() {
  const result = $('api-result');
  result.dataset.state = 'pending';
  let response = await whoami();
  // An access token can die early (its key revoked, clock skew): one refresh, one retry.
  if (response.status === 401 && (await refresh())) response = await whoami();
  const body = await response.json().catch(() => ({}));
  result.textContent = `${response.status}\n${JSON.stringify(body, null, 2)}`;
  result.dataset.state = 'done';
  say(
    response.ok ? 'The orders API accepted the token.' : 'The orders API refused the request.',
    response.ok ? 'info' : 'error',
  );
}

async function logOut() {
  // Under the refresh lock, so no other tab is rotating the cookie meanwhile.
  await navigator.locks.request('tessera-refresh', async () => {
    const response = await fetch(`${tessera}/oauth/revoke`, {
      method: 'POST',
      credentials: 'include',
      body: new URLSearchParams({ token_type_hint: 'refresh_token' }),
    });
    if (!response.ok) throw new Error(await errorOf(response));
  });
  forget();
  channel.postMessage({ type: 'signed-out' });
  say('Logged out.');
}

channel.addEventListener('message', ({ data }) => {
  if (data.type === 'session') {
    if (session === null) say('Signed in from another tab.');
    adopt(data.tokens, data.obtainedAt);
  } else if (data.type === 'signed-out') {
    forget();
    say('Logged out in another tab.');
  }
});

// Background tabs' timers are throttled: catch up when the tab is shown again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && session !== null) scheduleRefresh();
});

const report = (action) => (event) => action(event).catch((error) => say(error.message, 'error'));
$('credentials').addEventListener('submit', report(logIn));
$('register').addEventListener('click', report(register));
$('call-api').addEventListener('click', report(callApi));
$('refresh-now').addEventListener(
  'click',
  report(() => refresh()),
);
$('logout').addEventListener('click', report(logOut));

// A new tab, or a reload: the access token is gone, the cookie may still hold a session.
try {
  await refresh();
} catch (error) {
  say(`Could not reach tessera: ${error.message}`, 'error');
}
render();
$('status').dataset.ready = 'true';
