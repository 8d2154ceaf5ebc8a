import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis connection when REDIS_URL is set, else null (counters stay in memory). */
    redis: Redis | null;
  }
}

/**
 * Connects to Redis when REDIS_URL is set: rate-limit and login-throttle
 * counters are then shared by every instance. Commands fail fast while Redis
 * is unreachable instead of queueing without bound.
 */
export default fp(
  async function redis(app: FastifyInstance, options: { config: Config }) {
    const url = options.config.redisUrl;
    if (!url) {
      app.decorate('redis', null);
      return;
    }
    const client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      commandTimeout: 1000,
    });
    client.on('error', (error) => app.log.warn({ err: error }, 'redis error'));
    await client.connect();
    app.decorate('redis', client);
    app.addHook('onClose', async () => {
      await client.quit().catch(() => client.disconnect());
    });
  },
  { name: 'redis' },
);
