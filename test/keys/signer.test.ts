import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
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
            const signature = await signer.sign(kid, key, Buffer.from(input));
            assert.equal(`${input}.${signature.toString('base64url')}`, expected);
          }),
        ),
      );
    } finally {
      await signer.close();
    }
  });
});
