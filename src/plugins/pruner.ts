import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { AuditRepository } from '../repositories/audit-repository.js';
import { Pruner } from '../services/pruner.js';

declare module 'fastify' {
  interface FastifyInstance {
    pruner: Pruner;
  }
}

/**
 * Runs the {@link Pruner} every PRUNE_INTERVAL seconds (first pass after a
 * random part of the interval, so instances started together do not prune in
 * lockstep). A failed pass (database down) is logged and retried next time.
 */
export default fp(
  async function pruner(app: FastifyInstance, options: { config: Config; now: () => number }) {
    const { config } = options;
    const instance = new Pruner(
      app.db.prisma,
      new AuditRepository(app.db.prisma, app.db.sql),
      {
        endedSessions: config.accessTokenTtl + config.clockLeeway + 3600,
        auditEvents: config.auditRetentionDays * 24 * 3600,
      },
      options.now,
    );
    app.decorate('pruner', instance);
    if (config.pruneInterval <= 0) return;
    let timer: NodeJS.Timeout | null = null;
    const run = () => {
      instance
        .prune()
        .then((deleted) => {
          if (deleted.sessions || deleted.auditEvents)
            app.log.info({ deleted }, 'pruned ended sessions and old audit events');
        })
        .catch((error: unknown) => app.log.warn({ err: error }, 'pruning failed'))
        .finally(() => {
          timer = setTimeout(run, config.pruneInterval * 1000);
          timer.unref();
        });
    };
    app.addHook('onReady', async () => {
      timer = setTimeout(run, Math.random() * config.pruneInterval * 1000);
      timer.unref();
    });
    app.addHook('onClose', async () => {
      if (timer) clearTimeout(timer);
    });
  },
  { name: 'pruner', dependencies: ['database'] },
);
