import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { RevocationRepository } from '../repositories/revocation-repository.js';
import { SessionRepository } from '../repositories/session-repository.js';
import { UserRepository } from '../repositories/user-repository.js';
import { MemoryCounterStore, RedisCounterStore } from '../services/counter-store.js';
import { IntrospectionService } from '../services/introspection-service.js';
import { LoginThrottle } from '../services/login-throttle.js';
import { defaultBlocklist } from '../services/password-blocklist.js';
import { PasswordHasher } from '../services/password-hasher.js';
import { RevocationService } from '../services/revocation-service.js';
import { SessionService } from '../services/session-service.js';
import { TokenService } from '../services/token-service.js';
import { UserService } from '../services/user-service.js';

/** The services the routes call; each is built once per app. */
export interface Services {
  users: UserService;
  sessions: SessionService;
  tokens: TokenService;
  revocations: RevocationService;
  introspection: IntrospectionService;
  hasher: PasswordHasher;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

/** Wires repositories into services. */
export default fp(
  async function services(app: FastifyInstance, options: { config: Config; now: () => number }) {
    const { config, now } = options;
    const hasher = new PasswordHasher(config.argon2, config.hashing);
    const users = new UserService(new UserRepository(app.db.prisma, app.db.sql), hasher, now);
    const sessions = new SessionService(
      new SessionRepository(app.db.prisma, app.db.sql),
      SecretBox.fromConfig(config),
      {
        refreshTokenTtl: config.refreshTokenTtl,
        sessionMaxAge: config.sessionMaxAge,
        refreshReuseGrace: config.refreshReuseGrace,
      },
      now,
    );
    const tokens = new TokenService(
      users,
      sessions,
      app.keyStore,
      {
        issuer: config.issuer,
        audience: config.audience,
        clientId: config.clientId,
        accessTokenTtl: config.accessTokenTtl,
      },
      now,
      new LoginThrottle(
        app.redis ? new RedisCounterStore(app.redis) : new MemoryCounterStore(now),
        config.loginThrottle,
        now,
      ),
      app.audit,
    );
    // The first unknown-user login must not be slower than later ones, and a
    // missing password blocklist must stop start-up, not a registration.
    await hasher.warmUp();
    defaultBlocklist();
    const revocations = new RevocationService(
      new RevocationRepository(app.db.prisma),
      { accessTokenTtl: config.accessTokenTtl, clockLeeway: config.clockLeeway },
      now,
    );
    const introspection = new IntrospectionService(users, sessions, { clientId: config.clientId });
    app.decorate('services', { users, sessions, tokens, revocations, introspection, hasher });
  },
  { name: 'services', dependencies: ['database', 'key-store', 'redis', 'audit'] },
);
