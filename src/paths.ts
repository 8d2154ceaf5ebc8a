import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding tessera's package.json, found by walking up from this
 * module: the same code runs from `src/` (tsx) and from `dist/src/` (built).
 */
export const projectRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'prisma'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the tessera project root');
    dir = parent;
  }
})();

/** tessera's version from package.json. */
export const version: string = (
  JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }
).version;
