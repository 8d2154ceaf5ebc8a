import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Sqlite from 'better-sqlite3';
import { providerOf, sqliteFilePath } from './migrate.js';

/** A backup or restore that could not be done; the message says why. */
export class BackupError extends Error {
  override name = 'BackupError';
}

/**
 * Writes a consistent backup of the database to `file` while the service
 * keeps running. SQLite: the online backup API (pages copied under short
 * read locks, WAL content included). PostgreSQL: `pg_dump --format=custom`
 * (one repeatable-read snapshot), which `pg_restore` reads back.
 */
export async function backupDatabase(databaseUrl: string, file: string): Promise<{ bytes: number }> {
  const target = resolve(file);
  if (existsSync(target)) throw new BackupError(`${target} exists; refusing to overwrite it`);
  mkdirSync(dirname(target), { recursive: true });
  if (providerOf(databaseUrl) === 'sqlite') {
    const source = sqliteFilePath(databaseUrl);
    if (!existsSync(source)) throw new BackupError(`no database at ${source}`);
    const db = new Sqlite(source, { readonly: true, timeout: 5000 });
    try {
      await db.backup(target);
    } finally {
      db.close();
    }
  } else {
    await run('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--file=${target}`, databaseUrl]);
  }
  return { bytes: statSync(target).size };
}

/**
 * Restores a backup made by {@link backupDatabase} into the database named by
 * `databaseUrl`, which must be new: an existing SQLite file or a PostgreSQL
 * database that already has tessera's tables is refused, so a restore never
 * overwrites live data. Stop the service while restoring SQLite.
 */
export async function restoreDatabase(databaseUrl: string, file: string): Promise<void> {
  const source = resolve(file);
  if (!existsSync(source)) throw new BackupError(`no backup at ${source}`);
  if (providerOf(databaseUrl) === 'sqlite') {
    const target = sqliteFilePath(databaseUrl);
    if (existsSync(target)) throw new BackupError(`${target} exists; restore into a new file`);
    // Check the backup is a sound SQLite database before putting it in place.
    const check = new Sqlite(source, { readonly: true });
    try {
      const result = check.pragma('integrity_check', { simple: true });
      if (result !== 'ok') throw new BackupError(`the backup failed its integrity check: ${String(result)}`);
    } finally {
      check.close();
    }
    mkdirSync(dirname(target), { recursive: true });
    try {
      copyFileSync(source, target);
    } catch (error) {
      rmSync(target, { force: true });
      throw error;
    }
    return;
  }
  await run('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${databaseUrl}`, source]);
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', (error) => reject(new BackupError(`cannot run ${command}: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolvePromise();
      // pg tools print the URL only when connecting fails; strip credentials anyway.
      else reject(new BackupError(`${command} failed: ${stderr.replace(/\/\/[^@\s]*@/g, '//***@').trim()}`));
    });
  });
}
