import { type KeyObject, sign } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * The signing thread's code (plain CommonJS, so it runs the same under tsx and
 * when built): RSASSA-PKCS1-v1_5 with SHA-256 over the bytes it is sent, with
 * keys it is sent once per kid.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { sign } = require('node:crypto');
const keys = new Map();
parentPort.on('message', (message) => {
  if (message.key) {
    keys.set(message.kid, message.key);
    return;
  }
  try {
    parentPort.postMessage({ id: message.id, signature: sign('sha256', message.input, keys.get(message.kid)) });
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: String(error && error.message || error) });
  }
});
`;

type Pending = { resolve: (signature: Buffer) => void; reject: (error: Error) => void };

/**
 * Computes RS256 signatures on a thread of its own. An RSA-2048 signature is
 * the costliest CPU step of a refresh after the database; made on the event
 * loop (as jose does), it holds up every other request meanwhile. A dedicated
 * thread rather than libuv's pool (`crypto.sign` with a callback), because
 * argon2id hashes occupy that pool for tens of milliseconds each during a
 * login flood. If the thread ever fails, signing falls back to the event loop.
 * Only the key store uses it (it is the only holder of private keys).
 */
export class Signer {
  #worker: Worker | null = null;
  #failed = false;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #sentKeys = new Set<string>();

  async sign(kid: string, key: KeyObject, input: Buffer): Promise<Buffer> {
    const worker = this.#thread();
    if (!worker) return sign('sha256', input, key);
    if (!this.#sentKeys.has(kid)) {
      worker.postMessage({ kid, key });
      this.#sentKeys.add(kid);
    }
    const id = this.#nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, kid, input });
    });
  }

  /** Ends the thread (at shutdown); a later signature starts a new one. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    this.#sentKeys.clear();
    await worker?.terminate();
  }

  #thread(): Worker | null {
    if (this.#failed) return null;
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    // An idle signing thread must not keep a finished process (a CLI command) alive.
    worker.unref();
    worker.on('message', (message: { id: number; signature?: Uint8Array; error?: string }) => {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.signature) pending.resolve(Buffer.from(message.signature));
      else pending.reject(new Error(`signing failed: ${message.error}`));
    });
    const fail = (error: Error) => {
      if (this.#worker !== worker) return;
      this.#failed = true;
      this.#worker = null;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the signing thread exited (code ${code})`)));
    this.#worker = worker;
    return worker;
  }
}
