import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../helpers/app.js';

/** Writes raw bytes to the server and reads until it closes the connection. */
function exchange(port: number, bytes: string, finish = true): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ text, ms: performance.now() - started }));
    socket.write(bytes);
    if (finish) socket.end();
  });
}

/** Status, headers and JSON body of a raw HTTP/1.1 response. */
function parse(text: string) {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) };
}

describe('requests Node refuses before there is a request', () => {
  let t: TestApp;
  let port: number;
  before(async () => {
    t = await startTestApp('sqlite');
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
  });
  after(() => t.close());

  for (const [what, bytes, status, code] of [
    [
      'headers over 16 KiB',
      `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'headers_too_large',
    ],
    ['a malformed request line', 'GET /healthz HTTP/9 nonsense\r\n\r\n', 400, 'bad_request'],
    [
      'a malformed Content-Length',
      'POST /v1/users HTTP/1.1\r\nhost: x\r\ncontent-length: 1x\r\n\r\n',
      400,
      'bad_request',
    ],
  ] as const) {
    it(`answer ${what} with ${status} problem details and the security headers`, async () => {
      const response = parse((await exchange(port, bytes)).text);
      assert.equal(response.status, status);
      assert.match(response.headers['content-type'] ?? '', /^application\/problem\+json/);
      assert.equal(response.body.code, code);
      assert.equal(response.body.status, status);
      assert.equal(response.headers['x-content-type-options'], 'nosniff');
      assert.equal(response.headers['x-request-id'], response.body.requestId);
    });
  }

  it('cut off a client that does not finish its headers after about 10 s, with 408', async () => {
    const { text, ms } = await exchange(port, 'GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ', false);
    const response = parse(text);
    assert.equal(response.status, 408);
    assert.equal(response.body.code, 'request_timeout');
    assert.ok(ms >= 9_500 && ms < 13_000, `closed after ${Math.round(ms)} ms`);
  });
});
