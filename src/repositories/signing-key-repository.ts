import type { PrismaClient } from '../db/database.js';

/** Lifecycle of a signing key (RFC 7517 keys published in the JWKS). */
export type SigningKeyStatus = 'next' | 'current' | 'retired' | 'revoked';

/** A stored signing key; `privateKey` is sealed (see SecretBox). */
export interface SigningKeyRecord {
  kid: string;
  algorithm: string;
  status: SigningKeyStatus;
  publicJwk: string;
  privateKey: string;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  revokedAt: Date | null;
}

/** Signing keys table access. Only the key store uses it. */
export class SigningKeyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Every key that is not revoked, newest first. */
  async listUsable(): Promise<SigningKeyRecord[]> {
    const rows = await this.prisma.signingKey.findMany({
      where: { status: { in: ['next', 'current', 'retired'] } },
      orderBy: { createdAt: 'desc' },
    });
    return rows as SigningKeyRecord[];
  }

  async listAll(): Promise<SigningKeyRecord[]> {
    const rows = await this.prisma.signingKey.findMany({ orderBy: { createdAt: 'desc' } });
    return rows as SigningKeyRecord[];
  }

  async exists(kid: string): Promise<boolean> {
    return (await this.prisma.signingKey.count({ where: { kid } })) > 0;
  }

  /**
   * Makes `key` the current signing key: the previous current key becomes
   * retired (still published so the tokens it signed keep verifying), in one
   * transaction so there is never more or less than one current key.
   */
  async activate(
    key: Pick<SigningKeyRecord, 'kid' | 'algorithm' | 'publicJwk' | 'privateKey'>,
    now: Date,
  ): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.signingKey.updateMany({ where: { status: 'current' }, data: { status: 'retired', retiredAt: now } }),
      this.prisma.signingKey.create({ data: { ...key, status: 'current', createdAt: now, activatedAt: now } }),
    ]);
  }

  /** Deletes retired keys retired before `before`; they signed nothing still valid. */
  async deleteRetiredBefore(before: Date): Promise<number> {
    const { count } = await this.prisma.signingKey.deleteMany({
      where: { status: 'retired', retiredAt: { lt: before } },
    });
    return count;
  }
}
