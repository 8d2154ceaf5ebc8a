import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildDownstream, type Downstream, type DownstreamOptions } from '../downstream/downstream.js';

/** Options of {@link buildWebDemo}. */
export interface WebDemoOptions extends DownstreamOptions {
  /**
   * The tessera URL the page calls (register, token, revoke). Defaults to
   * `issuer`. This page's own origin must be in tessera's ALLOWED_ORIGINS.
   */
  tesseraUrl?: string;
  /** How long before the access token expires the page refreshes it. Default 60 (at most 90% of the lifetime). */
  refreshBeforeExpirySeconds?: number;
}

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const ASSETS = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
} as const;

/**
 * The downstream example service ({@link buildDownstream}) serving the browser
 * demo page as well: `GET /` (the page), `/app.js`, `/style.css`, `/favicon.svg` and
 * `/config.json` (where tessera is). Serving the page from the API's own origin
 * keeps the `GET /v1/whoami` call same-origin; the calls to tessera are
 * cross-origin, so tessera needs `REFRESH_TOKEN_COOKIE=true` and this origin in
 * `ALLOWED_ORIGINS`.
 */
export function buildWebDemo(options: WebDemoOptions): Downstream {
  const { tesseraUrl, refreshBeforeExpirySeconds, ...downstreamOptions } = options;
  const downstream = buildDownstream(downstreamOptions);
  const tessera = new URL(tesseraUrl ?? options.issuer).origin;
  const pageConfig = JSON.stringify({ tessera, refreshBeforeExpirySeconds: refreshBeforeExpirySeconds ?? 60 });
  // The page may talk to itself and to tessera, and run only its own script (no inline code):
  // an injected script is what would steal an in-memory access token.
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src 'self' ${tessera}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');

  for (const [path, asset] of Object.entries(ASSETS)) {
    // Read once: the files are part of the example, not user content.
    const body = readFileSync(`${PUBLIC}${asset.file}`);
    downstream.app.get(path, async (_request, reply) =>
      reply
        .header('content-type', asset.type)
        .header('content-security-policy', csp)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache')
        .send(body),
    );
  }
  downstream.app.get('/config.json', async (_request, reply) =>
    reply.header('content-type', 'application/json').header('cache-control', 'no-cache').send(pageConfig),
  );
  return downstream;
}
