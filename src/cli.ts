import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { SecretBox } from './crypto/secret-box.js';
import { BackupError, backupDatabase, restoreDatabase } from './db/backup.js';
import { applyMigrations } from './db/migrate.js';
import { runDoctor } from './doctor.js';
import { ProblemError } from './errors.js';
import { KeyImportError } from './keys/key-store.js';
import { version } from './paths.js';
import { SessionSecretRepository } from './repositories/session-secret-repository.js';
import { serve } from './server.js';
import { rewrapSessionSecrets } from './services/secret-rewrap.js';

const USAGE = `tessera ${version}: central authentication service

Usage:
  tessera serve                      start the HTTP server (applies migrations first)
  tessera doctor                     check this deployment's settings and surroundings; print what to fix
  tessera migrate                    apply pending database migrations and exit
  tessera backup <file>              write a consistent backup of the live database to <file>
  tessera restore <file>             restore a backup into a NEW database (DATABASE_URL)
  tessera users create <username>    create a user; the password is read from stdin
  tessera users disable <username>   disable a user and end all their sessions
  tessera users audit <username>     print the user's audit events (JSON lines, newest first)
  tessera keys list                  list signing keys and their lifecycle (never prints private keys)
  tessera keys rotate                publish a new key now; it signs after KEY_PUBLISH_LEAD
  tessera keys revoke <kid>          compromised key: remove it from the JWKS at once
  tessera keys rewrap                re-encrypt every private key and session secret under
                                     KEY_ENCRYPTION_SECRET (reading KEY_ENCRYPTION_SECRET_PREVIOUS)
  tessera keys import <pem-file>     import an RSA private key (PKCS#1 or PKCS#8 PEM); signs after KEY_PUBLISH_LEAD

Settings come from the environment and from ./.env (see .env.example).`;

/** A command-line mistake: printed with the usage, exit code 2. */
class UsageError extends Error {}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password (then Enter and Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // Exactly one trailing line break is the terminator, not part of the password.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Builds the app without listening, runs `work` against it, and closes it. */
async function withApp<T>(config: Config, work: (app: FastifyInstance) => Promise<T>): Promise<T> {
  const app = buildApp({ ...config, logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel });
  try {
    await app.ready();
    return await work(app);
  } finally {
    await app.close();
  }
}

/** Runs one `tessera` command; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, sub, arg] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (command === '--version') {
    console.log(version);
    return 0;
  }
  if (existsSync('.env')) process.loadEnvFile('.env');
  if (command === 'doctor') {
    const findings = await runDoctor(process.env);
    for (const finding of findings) {
      console.log(
        `${finding.level.padEnd(4)}  ${finding.check}: ${finding.message}${finding.fix ? `\n      -> ${finding.fix}` : ''}`,
      );
    }
    return findings.some((finding) => finding.level === 'fail') ? 1 : 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve':
      await serve(config);
      return -1; // keep running
    case 'backup': {
      if (!sub) throw new UsageError('backup takes a file name');
      const { bytes } = await backupDatabase(config.databaseUrl, sub);
      console.log(`backup written to ${sub} (${bytes} bytes)`);
      return 0;
    }
    case 'restore': {
      if (!sub) throw new UsageError('restore takes a file name');
      await restoreDatabase(config.databaseUrl, sub);
      // A backup from an older version gets the newer migrations now.
      const { applied } = await applyMigrations({ databaseUrl: config.databaseUrl });
      console.log(`restored ${sub}${applied.length ? `; then applied ${applied.join(', ')}` : ''}`);
      return 0;
    }
    case 'migrate': {
      const { applied } = await applyMigrations({ databaseUrl: config.databaseUrl });
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }
    case 'users': {
      if (sub === 'create' && arg) {
        const password = await readStdin();
        const user = await withApp(config, (app) => app.services.users.register(arg, password));
        console.log(JSON.stringify({ id: user.id, username: user.username, createdAt: user.createdAt }));
        return 0;
      }
      if (sub === 'disable' && arg) {
        const found = await withApp(config, async (app) => {
          const userId = await app.services.users.disable(arg);
          if (userId) await app.audit.record({ type: 'user_disabled', userId, details: { by: 'cli' } });
          return userId;
        });
        if (!found) {
          console.error(`no user named "${arg}"`);
          return 1;
        }
        console.log(`disabled ${arg}; all their sessions ended`);
        return 0;
      }
      if (sub === 'audit' && arg) {
        const events = await withApp(config, async (app) => {
          const user = await app.services.users.findByUsername(arg);
          return user ? app.audit.listForUser(user.id, 100) : null;
        });
        if (!events) {
          console.error(`no user named "${arg}"`);
          return 1;
        }
        for (const event of events) console.log(JSON.stringify(event));
        return 0;
      }
      throw new UsageError('users takes: create <username> | disable <username> | audit <username>');
    }
    case 'keys': {
      if (sub === 'list') {
        const keys = await withApp(config, (app) => app.keyStore.list());
        const time = (date: Date | null) => date?.toISOString() ?? '-';
        console.log(['kid', 'status', 'created', 'signs from', 'retired', 'revoked'].join('\t'));
        for (const key of keys) {
          const signsFrom = key.activatedAt ?? key.activatesAt;
          console.log(
            [key.kid, key.status, time(key.createdAt), time(signsFrom), time(key.retiredAt), time(key.revokedAt)].join(
              '\t',
            ),
          );
        }
        return 0;
      }
      if (sub === 'rotate') {
        const { kid, activatesAt, created } = await withApp(config, async (app) => {
          const result = await app.keyStore.rotate();
          if (result.created) {
            await app.audit.record({
              type: 'signing_key_created',
              details: { kid: result.kid, activatesAt: result.activatesAt.toISOString(), by: 'cli' },
            });
          }
          return result;
        });
        console.log(
          `${created ? 'published new key' : 'a next key is already published'}: ${kid}; it signs from ${activatesAt.toISOString()}`,
        );
        return 0;
      }
      if (sub === 'revoke' && arg) {
        const { revoked, replacement } = await withApp(config, async (app) => {
          const result = await app.keyStore.revoke(arg);
          if (result.revoked) {
            await app.audit.record({
              type: 'signing_key_revoked',
              details: { kid: arg, replacement: result.replacement, by: 'cli' },
            });
          }
          return result;
        });
        if (!revoked) {
          console.error(`no signing key with kid "${arg}"`);
          return 1;
        }
        console.log(`revoked ${arg}${replacement ? `; now signing with ${replacement}` : ''}`);
        return 0;
      }
      if (sub === 'rewrap') {
        const counts = await withApp(config, async (app) => ({
          signingKeys: await app.keyStore.rewrap(),
          sessions: await rewrapSessionSecrets(
            new SessionSecretRepository(app.db.prisma),
            SecretBox.fromConfig(config),
          ),
        }));
        console.log(
          `re-encrypted under the current secret: ${counts.signingKeys} signing keys, ${counts.sessions} session secrets`,
        );
        return 0;
      }
      if (sub === 'import' && arg) {
        if (!existsSync(arg)) throw new UsageError(`no such file: ${arg}`);
        const { kid, activatesAt } = await withApp(config, (app) => app.keyStore.importPem(readFileSync(arg, 'utf8')));
        console.log(`imported ${kid}; it signs from ${activatesAt.toISOString()}`);
        return 0;
      }
      throw new UsageError('keys takes: list | rotate | revoke <kid> | rewrap | import <pem-file>');
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** Entry point of bin/tessera.js. */
export async function run(argv = process.argv.slice(2)): Promise<void> {
  try {
    const code = await main(argv);
    if (code >= 0) process.exitCode = code;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (
      error instanceof ConfigError ||
      error instanceof KeyImportError ||
      error instanceof ProblemError ||
      error instanceof BackupError
    ) {
      console.error(`tessera: ${error.message}`);
      process.exitCode = 1;
    } else {
      console.error('tessera:', error);
      process.exitCode = 1;
    }
    // A failed start can leave timers and connections behind; do not linger.
    if (argv[0] === 'serve') process.exit(process.exitCode);
  }
}
