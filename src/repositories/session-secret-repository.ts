import type { PrismaClient } from '../db/database.js';

/** Access to the sealed per-session refresh secrets, for re-encryption under a new key-encryption secret. */
export class SessionSecretRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Up to `limit` sessions after `afterId` (id order), with their sealed secrets. */
  async batchAfter(afterId: string, limit: number): Promise<Array<{ id: string; secret: string }>> {
    return this.prisma.session.findMany({
      where: { id: { gt: afterId } },
      select: { id: true, secret: true },
      orderBy: { id: 'asc' },
      take: limit,
    });
  }

  /**
   * Replaces a session's sealed secret if it is still `expected`: a session
   * cannot change its secret, but the check keeps a concurrent rewrap harmless.
   */
  async replaceSecret(id: string, expected: string, secret: string): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({ where: { id, secret: expected }, data: { secret } });
    return count === 1;
  }
}
