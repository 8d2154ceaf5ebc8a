import type { SqlDriverAdapter, Transaction } from '@prisma/driver-adapter-utils';

/**
 * Holds queries outside a transaction back while one is open on a SQLite
 * connection. Prisma's better-sqlite3 adapter serializes transactions, but its
 * other queries run at once on the same connection: during an interactive
 * transaction (a key promotion, say) a refresh's UPDATE from another request
 * would run inside it, and a rollback would undo a rotation whose new token
 * the client already holds. With the gate, such a query waits for the COMMIT
 * or ROLLBACK, as it would wait for PostgreSQL's row lock.
 *
 * So inside `$transaction(async (tx) => …)` every query must go through `tx`:
 * one made through the outer client (or the driver) would wait for the
 * transaction it is part of, until Prisma's transaction timeout ends both.
 * Transactions queue here and again on the adapter's own (private) mutex.
 */
export class TransactionGate {
  #open: Promise<void> | null = null;

  /** Whether a transaction is open now. */
  get open(): boolean {
    return this.#open !== null;
  }

  /** Waits for the open transaction, if any, then opens one; returns its release. */
  async enter(): Promise<() => void> {
    while (this.#open) await this.#open;
    let release: () => void = () => {};
    this.#open = new Promise<void>((resolve) => {
      release = resolve;
    });
    const opened = this.#open;
    return () => {
      if (this.#open === opened) this.#open = null;
      release();
    };
  }

  /**
   * Runs `work` now if no transaction is open, else once none is. The check
   * runs again right before `work`, in the same turn, so a transaction opened
   * meanwhile is waited for too.
   */
  run<T>(work: () => Promise<T>): Promise<T> {
    return this.#open ? this.#runAfter(work) : work();
  }

  async #runAfter<T>(work: () => Promise<T>): Promise<T> {
    while (this.#open) await this.#open;
    return work();
  }
}

/** The part of a better-sqlite3 connection the gate needs to close a transaction left open. */
export interface TransactionState {
  readonly inTransaction: boolean;
  exec(sql: string): unknown;
}

/**
 * Puts `adapter`'s queries behind `gate`: its own queries wait while one of
 * its transactions is open; the transaction's queries do not. When Prisma
 * ends a transaction whose COMMIT failed, it releases it without a ROLLBACK:
 * the gate rolls back what is still open on `connection` before letting the
 * other queries in, so that none of them runs inside it.
 */
export function gateTransactions(
  adapter: SqlDriverAdapter,
  gate: TransactionGate,
  connection: TransactionState | null,
): void {
  const queryRaw = adapter.queryRaw.bind(adapter);
  const executeRaw = adapter.executeRaw.bind(adapter);
  const executeScript = adapter.executeScript.bind(adapter);
  const startTransaction = adapter.startTransaction.bind(adapter);
  adapter.queryRaw = (query) => gate.run(() => queryRaw(query));
  adapter.executeRaw = (query) => gate.run(() => executeRaw(query));
  adapter.executeScript = (script) => gate.run(() => executeScript(script));
  adapter.startTransaction = async (isolationLevel) => {
    const release = await gate.enter();
    const leave = () => {
      try {
        if (connection?.inTransaction) connection.exec('ROLLBACK');
      } finally {
        release();
      }
    };
    let transaction: Transaction;
    try {
      transaction = await startTransaction(isolationLevel);
    } catch (error) {
      leave();
      throw error;
    }
    const commit = transaction.commit.bind(transaction);
    const rollback = transaction.rollback.bind(transaction);
    transaction.commit = () => commit().finally(leave);
    transaction.rollback = () => rollback().finally(leave);
    return transaction;
  };
}
