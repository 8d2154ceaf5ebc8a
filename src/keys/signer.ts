import { type KeyObject, sign } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * The signing thread's code (plain CommonJS, so it runs the same under tsx and
 * when built): RSASSA-PKCS1-v1_5 with SHA-256 over the bytes it is sent, with
 * keys it is sent once per kid. The input comes as a string: a Buffer made
 * from a short string is a view into Node's shared 8 KiB pool, and a
 * structured clone copies the view's whole ArrayBuffer.
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
    parentPort.postMessage({ id: message.id, signature: sign('sha256', Buffer.from(message.input), keys.get(message.kid)) });
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: String(error && error.message || error) });
  }
});
`;

/** A call in flight, with what it needs to be signed again elsewhere. */
type Pending = {
  kid: string;
  key: KeyObject;
  input: string;
  resolve: (signature: Buffer) => void;
  reject: (error: Error) => void;
};

/** One signing thread and the calls it has yet to answer. */
interface SigningThread {
  worker: Worker;
  pending: Map<number, Pending>;
  sentKeys: Set<string>;
  signed: number;
}

/**
 * Computes RS256 signatures on threads of their own. An RSA-2048 signature
 * (~0.2 ms of a core) is the costliest CPU step of a refresh after the
 * database; made on the event loop (as jose does), it holds up every other
 * request meanwhile, and one thread caps a process at one core's worth of
 * signatures. Dedicated threads rather than libuv's pool (`crypto.sign` with a
 * callback), because argon2id hashes occupy that pool for tens of
 * milliseconds each during a login flood. Each call goes to the thread with
 * the fewest signatures in flight. If a thread fails, the others carry on; with
 * none left, signing falls back to the event loop. Only the key store uses it
 * (it is the only holder of private keys).
 */
export class Signer {
  readonly #size: number;
  #threads: SigningThread[] | null = null;
  #failed = 0;
  #nextId = 0;

  /** @param threads how many signing threads to run (at least 1). */
  constructor(threads = 1) {
    this.#size = Math.max(1, Math.floor(threads));
  }

  /** RSASSA-PKCS1-v1_5 with SHA-256 over the UTF-8 bytes of `input` (a JWS signing input). */
  async sign(kid: string, key: KeyObject, input: string): Promise<Buffer> {
    const thread = this.#pick();
    if (!thread) return sign('sha256', Buffer.from(input), key);
    if (!thread.sentKeys.has(kid)) {
      thread.worker.postMessage({ kid, key });
      thread.sentKeys.add(kid);
    }
    const id = this.#nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(id, { kid, key, input, resolve, reject });
      thread.worker.postMessage({ id, kid, input });
    });
  }

  /** Signatures answered by each live thread so far. */
  signedPerThread(): number[] {
    return (this.#threads ?? []).map((thread) => thread.signed);
  }

  /** Ends the threads (at shutdown); a later signature starts new ones. */
  async close(): Promise<void> {
    const threads = this.#threads ?? [];
    this.#threads = null;
    for (const thread of threads) {
      for (const pending of thread.pending.values()) pending.reject(new Error('the signer was closed'));
      thread.pending.clear();
    }
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }

  /** The live thread with the fewest signatures in flight; null once every thread has failed. */
  #pick(): SigningThread | null {
    if (this.#failed >= this.#size) return null;
    this.#threads ??= Array.from({ length: this.#size - this.#failed }, () => this.#start());
    let best: SigningThread | null = null;
    for (const thread of this.#threads) {
      if (!best || thread.pending.size < best.pending.size) best = thread;
    }
    return best;
  }

  #start(): SigningThread {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    // An idle signing thread must not keep a finished process (a CLI command) alive.
    worker.unref();
    const thread: SigningThread = { worker, pending: new Map(), sentKeys: new Set(), signed: 0 };
    worker.on('message', (message: { id: number; signature?: Uint8Array; error?: string }) => {
      const pending = thread.pending.get(message.id);
      if (!pending) return;
      thread.pending.delete(message.id);
      thread.signed += 1;
      if (message.signature) {
        // The clone is this thread's own copy: wrap it rather than copy it again.
        const { buffer, byteOffset, byteLength } = message.signature;
        pending.resolve(Buffer.from(buffer, byteOffset, byteLength));
      } else pending.reject(new Error(`signing failed: ${message.error}`));
    });
    const fail = () => {
      const threads = this.#threads;
      if (!threads?.includes(thread)) return;
      this.#failed += 1;
      threads.splice(threads.indexOf(thread), 1);
      // Its calls are signed again, on another thread or on the event loop: a
      // refresh has already rotated its session when it signs, and a failed
      // response would leave the client holding a token that is now spent.
      const pending = [...thread.pending.values()];
      thread.pending.clear();
      for (const call of pending) this.sign(call.kid, call.key, call.input).then(call.resolve, call.reject);
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    return thread;
  }
}
