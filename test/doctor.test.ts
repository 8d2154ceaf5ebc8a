import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runDoctor } from '../src/doctor.js';
import { startTestApp, TEST_KEY_ENCRYPTION_SECRET } from './helpers/app.js';

const levelOf = (findings: Awaited<ReturnType<typeof runDoctor>>, check: string) =>
  findings.filter((finding) => finding.check === check).map((finding) => finding.level);

describe('tessera doctor', () => {
  it('passes a sound deployment on a migrated database', async () => {
    const t = await startTestApp('sqlite');
    try {
      const findings = await runDoctor({
        DATABASE_URL: t.databaseUrl,
        KEY_ENCRYPTION_SECRET: 'Zq8v1Kx3Lm9Tn4Rb7Yc2Wd5Pe0Hf6Gj-Ua_Sk',
        ISSUER: 'http://localhost:3000',
      });
      assert.deepEqual(
        findings.filter((finding) => finding.level !== 'ok').map((finding) => finding.check),
        [],
        JSON.stringify(findings, null, 1),
      );
      assert.deepEqual(levelOf(findings, 'migrations'), ['ok']);
      assert.deepEqual(levelOf(findings, 'signing keys'), ['ok']);
    } finally {
      await t.close();
    }
  });

  it('names what to fix in a risky production setup', async () => {
    const findings = await runDoctor({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
      KEY_ENCRYPTION_SECRET: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
      ISSUER: 'http://auth.example.com',
      TRUST_PROXY: 'true',
      ARGON2_MEMORY_COST: '1024',
      ACCESS_TOKEN_TTL: '86400',
      KEY_ROTATION_INTERVAL: '0',
    });
    assert.deepEqual(levelOf(findings, 'issuer'), ['fail']);
    assert.deepEqual(levelOf(findings, 'key-encryption secret'), ['warn']);
    assert.deepEqual(levelOf(findings, 'proxy'), ['warn']);
    assert.deepEqual(levelOf(findings, 'password hashing'), ['fail']);
    assert.deepEqual(levelOf(findings, 'tokens'), ['warn']);
    assert.deepEqual(levelOf(findings, 'signing keys'), ['warn']);
    assert.deepEqual(levelOf(findings, 'database'), ['fail']);
    for (const finding of findings.filter((entry) => entry.level !== 'ok')) assert.ok(finding.fix, finding.check);
    // The secret itself is never printed.
    assert.ok(!JSON.stringify(findings).includes('aaaaaaaaaaaaaaaa'));
  });

  it('reports a bad setting by name instead of crashing', async () => {
    const findings = await runDoctor({ PORT: 'many', KEY_ENCRYPTION_SECRET: TEST_KEY_ENCRYPTION_SECRET });
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.level, 'fail');
    assert.match(findings[0]?.message ?? '', /PORT/);
  });
});
