// Runs the test suite: every test/**/*.test.ts and examples/**/test/*.test.ts
// file (or the files given as arguments) in Node's test runner, one file at a
// time because the files share the local PostgreSQL server. Node 20's runner
// does not expand globs itself.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : findTests(path);
    return entry.name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

const args = process.argv.slice(2);
const options = args.filter((arg) => arg.startsWith('--'));
const files = args.filter((arg) => !arg.startsWith('--'));
// Examples keep their tests in a `test` folder of their own (examples/<name>/test/*.test.ts).
const exampleTests = () =>
  existsSync(join(root, 'examples'))
    ? findTests(join(root, 'examples')).filter((path) => basename(dirname(path)) === 'test')
    : [];
const selected = files.length > 0 ? files : [...findTests(join(root, 'test')).sort(), ...exampleTests().sort()];
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=900000', ...options, ...selected],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
