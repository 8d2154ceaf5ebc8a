import assert from 'node:assert/strict';
import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { SignJWT } from 'jose';
import { Signer } from '../../src/keys/signer.js';

describe('Signer (RS256 on its own thread)', () => {
  it('makes the same signatures as jose, for several keys and concurrent calls', async () => {
    const signer = new Signer();
    try {
      const keys = ['a', 'b'].map((kid) => ({
        kid,
        key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
      }));
      const claims = { sub: 'user', username: 'zoë', roles: ['admin'], iat: 1, exp: 2 };
      await Promise.all(
        keys.flatMap(({ kid, key }) =>
          [1, 2, 3].map(async (n) => {
            const payload = { ...claims, jti: `${kid}-${n}` };
            const expected = await new SignJWT(payload)
              .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
              .sign(key);
            const input = expected.slice(0, expected.lastIndexOf('.'));
            const signature = await signer.sign(kid, key, input);
            assert.equal(`${input}.${signature.toString('base64url')}`, expected);
          }),
        ),
      );
    } finally {
      await signer.close();
    }
  });

  it('spreads concurrent signatures over several threads, each as jose would make it', async () => {
    const signer = new Signer(3);
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const expected = await Promise.all(
        Array.from({ length: 24 }, (_, n) =>
          new SignJWT({ sub: 'user', n })
            .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'k' })
            .sign(privateKey),
        ),
      );
      const inputs = expected.map((jwt) => jwt.slice(0, jwt.lastIndexOf('.')));
      // All requested at once: each goes to the thread with the fewest in flight.
      const signatures = await Promise.all(inputs.map((input) => signer.sign('k', privateKey, input)));
      signatures.forEach((signature, n) => {
        assert.equal(`${inputs[n]}.${signature.toString('base64url')}`, expected[n]);
      });
      const perThread = signer.signedPerThread();
      assert.equal(perThread.length, 3, 'three signing threads');
      assert.equal(
        perThread.reduce((a, b) => a + b, 0),
        24,
      );
      assert.ok(
        perThread.every((count) => count > 0),
        `every thread signed: ${perThread}`,
      );
    } finally {
      await signer.close();
    }
  });

  it('re-signs the calls of a thread that dies, and signs on the event loop once none is left', async () => {
    const workers: Worker[] = [];
    const onWorker = (worker: Worker) => workers.push(worker);
    process.on('worker', onWorker);
    const signer = new Signer(2);
    try {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const input = 'header.payload';
      const valid = (signature: Buffer) => verify('sha256', Buffer.from(input), publicKey, signature);
      assert.ok(valid(await signer.sign('k', privateKey, input)));
      assert.equal(workers.length, 2);
      // Calls in flight on both threads; one thread dies before answering.
      const inFlight = Array.from({ length: 10 }, () => signer.sign('k', privateKey, input));
      await workers[0]?.terminate();
      for (const signature of await Promise.all(inFlight)) assert.ok(valid(signature));
      assert.equal(signer.signedPerThread().length, 1);
      await workers[1]?.terminate();
      assert.ok(valid(await signer.sign('k', privateKey, input)), 'signed on the event loop');
      assert.equal(signer.signedPerThread().length, 0);
    } finally {
      process.off('worker', onWorker);
      await signer.close();
    }
  });

  it('rejects the calls still in flight when it is closed', async () => {
    const signer = new Signer(1);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rejected = assert.rejects(signer.sign('k', privateKey, 'x'), /the signer was closed/);
    await signer.close();
    await rejected;
  });
});
