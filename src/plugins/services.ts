import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { SessionRepository } from '../repositories/session-repository.js';
import { UserRepository } from '../repositories/user-repository.js';
import { PasswordHasher } from '../services/password-hasher.js';
import { SessionService } from '../services/session-service.js';
import { TokenService } from '../services/token-service.js';
import { UserService } from '../services/user-service.js';

/** The services the routes call; each is built once per app. */
export interface Services {
  users: UserService;
  sessions: SessionService;
  tokens: TokenService;
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
    const hasher = new PasswordHasher(config.argon2);
    const users = new UserService(new UserRepository(app.db.prisma), hasher, now);
    const sessions = new SessionService(
      new SessionRepository(app.db.prisma),
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
    );
    // The first unknown-user login must not be slower than later ones.
    await hasher.warmUp();
    app.decorate('services', { users, sessions, tokens });
  },
  { name: 'services', dependencies: ['database', 'key-store'] },
);
