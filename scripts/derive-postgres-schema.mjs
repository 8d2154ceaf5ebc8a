// Derives prisma/postgres/schema.prisma from prisma/sqlite/schema.prisma, the
// single source of the data model. `--check` exits 1 when the derived file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = readFileSync(`${root}prisma/sqlite/schema.prisma`, 'utf8');

export function derivePostgresSchema(sqliteSchema) {
  return (
    sqliteSchema
      .replace(
        /^\/\/ The single source.*\n\/\/ derived from.*\n/m,
        '// GENERATED from prisma/sqlite/schema.prisma by `npm run db:schema`. Do not edit.\n',
      )
      .replace(
        'output              = "../../src/generated/sqlite"',
        'output              = "../../src/generated/postgres"',
      )
      .replace('provider = "sqlite"', 'provider = "postgresql"')
      // Timestamps with time zone, millisecond precision, on PostgreSQL.
      .replace(/^(\s+\w+\s+DateTime\??)(.*)$/gm, (_line, head, rest) => `${head}${rest} @db.Timestamptz(3)`)
  );
}

const derived = derivePostgresSchema(source);
const target = `${root}prisma/postgres/schema.prisma`;
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== derived) {
    console.error('prisma/postgres/schema.prisma is stale: run `npm run db:schema`');
    process.exit(1);
  }
} else {
  writeFileSync(target, derived);
  console.log('wrote prisma/postgres/schema.prisma');
}
