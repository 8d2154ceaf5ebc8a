import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApp, type TestApp } from '../helpers/app.js';

/**
 * Writes raw bytes to the server and reads until the server ends its side.
 * The client never sends its FIN (half-open allowed), as a slow-loris client
 * would not; `open` then tells how many connections the server still holds.
 */
function exchange(port: number, bytes: string): Promise<{ text: string; ms: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('end', () => resolve({ text, ms: performance.now() - started, socket }));
    socket.write(bytes);
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

  /** Connections the server holds, once it has had up to 3 s to let go of them. */
  const openConnections = async () => {
    let count = -1;
    for (let i = 0; i < 30 && count !== 0; i++) {
      count = await new Promise<number>((resolve, reject) =>
        t.app.server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
      );
      if (count !== 0) await sleep(100);
    }
    return count;
  };

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
      const { text, socket } = await exchange(port, bytes);
      const response = parse(text);
      // The client never ends its side: the server lets go of the connection anyway.
      assert.equal(await openConnections(), 0, 'the server still holds the connection');
      socket.destroy();
      assert.equal(response.status, status);
      assert.match(response.headers['content-type'] ?? '', /^application\/problem\+json/);
      assert.equal(response.body.code, code);
      assert.equal(response.body.status, status);
      assert.equal(response.headers['x-content-type-options'], 'nosniff');
      assert.equal(response.headers['x-request-id'], response.body.requestId);
    });
  }

  it('cut off a client that does not finish its headers after about 10 s, with 408', async () => {
    const { text, ms, socket } = await exchange(port, 'GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ');
    const response = parse(text);
    assert.equal(await openConnections(), 0, 'the server still holds the connection');
    socket.destroy();
    assert.equal(response.status, 408);
    assert.equal(response.body.code, 'request_timeout');
    assert.ok(ms >= 9_500 && ms < 13_000, `closed after ${Math.round(ms)} ms`);
  });
});
