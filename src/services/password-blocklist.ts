import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../paths.js';
import { normalizePassword } from './password-hasher.js';

// NIST SP 800-63B §5.1.1.2: new passwords are compared against a list of
// commonly-used values. The list ships as `assets/common-passwords.bin`, made by
// `npm run db:blocklist` (scripts/build-password-blocklist.mjs; assets/README.md
// says where the passwords come from). The file holds sorted, unique, 64-bit
// truncated SHA-256 hashes rather than strings so that a lookup is a binary
// search over one Buffer: memory is the file size, loaded once, and time is
// O(log n) — no JS Set of 100,000 strings on the heap.
//
// File layout (all integers big-endian):
//   0  8 bytes  magic "TESSPWBL"
//   8  uint32   format version (1)
//  12  uint32   entry count n
//  16  uint32   minimum length, in code points, of the normalized passwords kept
//  20  uint32   how many ranks of the frequency-ordered source list were read
//  24 32 bytes  SHA-256 of the entry bytes that follow (detects a damaged file)
//  56  n x 8    entries: first 8 bytes of SHA-256(UTF-8 of the normalized password), ascending, unique

/** The first bytes of every blocklist file. */
export const BLOCKLIST_MAGIC = 'TESSPWBL';
/** The file format this code reads and writes. */
export const BLOCKLIST_VERSION = 1;
/** Size of the fixed header that precedes the entries. */
export const BLOCKLIST_HEADER_BYTES = 56;
/** Size of one entry: a 64-bit truncated SHA-256. */
export const BLOCKLIST_ENTRY_BYTES = 8;

/** Where the bundled list lives: `assets/` at the project root, both under tsx (`src/`) and when built (`dist/src/`). */
export const defaultBlocklistPath: string = join(projectRoot, 'assets', 'common-passwords.bin');

/**
 * The form of a password that the blocklist compares: the service's own
 * normalization (Unicode NFKC, as used before hashing) and then lower case,
 * because `Password1` and `PASSWORD1` are exactly as guessable as `password1`:
 * capitalization is the first rule every cracking tool applies.
 */
export function normalizeForBlocklist(password: string): string {
  return normalizePassword(password).toLowerCase();
}

/** The 8-byte entry for `password`; the build script and {@link PasswordBlocklist.has} share it. */
export function blocklistEntry(password: string): Buffer {
  return createHash('sha256')
    .update(normalizeForBlocklist(password), 'utf8')
    .digest()
    .subarray(0, BLOCKLIST_ENTRY_BYTES);
}

/** What a blocklist file says about itself besides its entries. */
export interface BlocklistMetadata {
  /** Shortest normalized password, in code points, that the list holds; shorter ones were left out. */
  minLength: number;
  /** How many entries, from the top, of the frequency-ordered source list were read to build it. */
  sourceRanks: number;
}

/**
 * Builds the bytes of a blocklist file from 8-byte entries in any order;
 * duplicates are dropped. Used by the build script and by tests.
 */
export function encodeBlocklist(entries: Iterable<Uint8Array>, metadata: BlocklistMetadata): Buffer {
  const unique = new Map<string, Buffer>();
  for (const entry of entries) {
    if (entry.length !== BLOCKLIST_ENTRY_BYTES) throw new Error(`blocklist entries are ${BLOCKLIST_ENTRY_BYTES} bytes`);
    const bytes = Buffer.from(entry);
    unique.set(bytes.toString('hex'), bytes);
  }
  const sorted = [...unique.values()].sort(Buffer.compare);
  const body = Buffer.concat(sorted, sorted.length * BLOCKLIST_ENTRY_BYTES);
  const header = Buffer.alloc(BLOCKLIST_HEADER_BYTES);
  header.write(BLOCKLIST_MAGIC, 0, 'latin1');
  header.writeUInt32BE(BLOCKLIST_VERSION, 8);
  header.writeUInt32BE(sorted.length, 12);
  header.writeUInt32BE(metadata.minLength, 16);
  header.writeUInt32BE(metadata.sourceRanks, 20);
  createHash('sha256').update(body).digest().copy(header, 24);
  return Buffer.concat([header, body]);
}

/**
 * A set of common passwords, held as one Buffer of sorted 64-bit hashes.
 *
 * {@link has} answers in O(log n) with no allocation beyond one SHA-256, and the
 * memory used is the file size. A random password is wrongly reported as
 * common with probability n / 2^64 (about 5 x 10^-15 for 100,000 entries).
 *
 * Passwords whose normalized form is shorter than {@link minLength} are not in
 * the list: the length rule refuses them before the list is consulted.
 */
export class PasswordBlocklist {
  /** Number of entries. */
  readonly size: number;
  /** Shortest normalized password, in code points, that the list holds. */
  readonly minLength: number;
  /** How many top ranks of the frequency-ordered source list the file was built from. */
  readonly sourceRanks: number;
  readonly #data: Buffer;

  private constructor(data: Buffer, size: number, metadata: BlocklistMetadata) {
    this.#data = data;
    this.size = size;
    this.minLength = metadata.minLength;
    this.sourceRanks = metadata.sourceRanks;
  }

  /**
   * Reads and validates a blocklist file, by default the bundled
   * `assets/common-passwords.bin`. Throws a descriptive error when the file is
   * missing, is not a blocklist, or is damaged: refusing to start is better than
   * silently accepting every common password.
   */
  static load(path: string = defaultBlocklistPath): PasswordBlocklist {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (error) {
      throw new Error(
        `cannot read the common-password blocklist ${path}: ${(error as Error).message} ` +
          '(it ships in assets/; regenerate it with `npm run db:blocklist`)',
        { cause: error },
      );
    }
    return PasswordBlocklist.fromBuffer(data, path);
  }

  /** Validates blocklist file contents already in memory; `source` names them in errors. */
  static fromBuffer(data: Buffer, source = 'buffer'): PasswordBlocklist {
    const fail = (problem: string): never => {
      throw new Error(`invalid common-password blocklist ${source}: ${problem}`);
    };
    if (data.length < BLOCKLIST_HEADER_BYTES) fail(`${data.length} bytes is shorter than the header`);
    if (data.toString('latin1', 0, BLOCKLIST_MAGIC.length) !== BLOCKLIST_MAGIC)
      fail('not a blocklist file (bad magic)');
    const version = data.readUInt32BE(8);
    if (version !== BLOCKLIST_VERSION) fail(`format version ${version}, expected ${BLOCKLIST_VERSION}`);
    const size = data.readUInt32BE(12);
    const minLength = data.readUInt32BE(16);
    const sourceRanks = data.readUInt32BE(20);
    // An empty list would block nothing, which is never what a build meant.
    if (size === 0) fail('no entries');
    const expected = BLOCKLIST_HEADER_BYTES + size * BLOCKLIST_ENTRY_BYTES;
    if (data.length !== expected) fail(`${data.length} bytes, but the header's count of ${size} needs ${expected}`);
    if (minLength === 0) fail('minimum length 0');
    const body = data.subarray(BLOCKLIST_HEADER_BYTES);
    if (!createHash('sha256').update(body).digest().equals(data.subarray(24, BLOCKLIST_HEADER_BYTES))) {
      fail('entry checksum mismatch (damaged file)');
    }
    // Binary search is only correct over strictly ascending entries.
    for (let i = 1; i < size; i++) {
      const current = BLOCKLIST_HEADER_BYTES + i * BLOCKLIST_ENTRY_BYTES;
      const previous = data.subarray(current - BLOCKLIST_ENTRY_BYTES, current);
      if (Buffer.compare(previous, data.subarray(current, current + BLOCKLIST_ENTRY_BYTES)) >= 0) {
        fail(`entries not strictly ascending at index ${i}`);
      }
    }
    return new PasswordBlocklist(data, size, { minLength, sourceRanks });
  }

  /** Bytes held in memory: the header plus {@link size} entries of 8 bytes. */
  get byteLength(): number {
    return this.#data.length;
  }

  /** Whether `password`, normalized (NFKC, lower case), is on the list. */
  has(password: string): boolean {
    const entry = blocklistEntry(password);
    // Compare as two 32-bit halves: plain numbers, no BigInt allocation per probe.
    const high = entry.readUInt32BE(0);
    const low = entry.readUInt32BE(4);
    const data = this.#data;
    let first = 0;
    let last = this.size - 1;
    while (first <= last) {
      const middle = (first + last) >>> 1;
      const offset = BLOCKLIST_HEADER_BYTES + middle * BLOCKLIST_ENTRY_BYTES;
      const probeHigh = data.readUInt32BE(offset);
      const probeLow = data.readUInt32BE(offset + 4);
      if (probeHigh === high && probeLow === low) return true;
      if (probeHigh < high || (probeHigh === high && probeLow < low)) first = middle + 1;
      else last = middle - 1;
    }
    return false;
  }
}

let shared: PasswordBlocklist | undefined;

/**
 * The bundled blocklist, read on first use and kept for the life of the
 * process. Call it once at start-up to fail fast if the file is missing;
 * a failed load is not cached, so the next call tries again.
 */
export function defaultBlocklist(): PasswordBlocklist {
  shared ??= PasswordBlocklist.load();
  return shared;
}
