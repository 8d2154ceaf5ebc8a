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
  activatesAt: Date | null;
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

  /** Stores a new key as `next`: published in the JWKS, signing from `activatesAt`. */
  async insertNext(
    key: Pick<SigningKeyRecord, 'kid' | 'algorithm' | 'publicJwk' | 'privateKey'>,
    activatesAt: Date,
    now: Date,
  ): Promise<void> {
    await this.prisma.signingKey.create({ data: { ...key, status: 'next', createdAt: now, activatesAt } });
  }

  /**
   * Makes a new `key` the current signing key at once: the previous current key
   * becomes retired (still published so the tokens it signed keep verifying),
   * in one transaction so there is never more or less than one current key.
   */
  async activate(
    key: Pick<SigningKeyRecord, 'kid' | 'algorithm' | 'publicJwk' | 'privateKey'>,
    now: Date,
  ): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.signingKey.updateMany({ where: { status: 'current' }, data: { status: 'retired', retiredAt: now } }),
      this.prisma.signingKey.create({
        data: { ...key, status: 'current', createdAt: now, activatesAt: now, activatedAt: now },
      }),
    ]);
  }

  /**
   * Promotes the `next` key `kid` to current and retires the current one, in
   * one transaction. Returns false when `kid` is no longer a `next` key.
   */
  async promote(kid: string, now: Date): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      const { count } = await tx.signingKey.updateMany({
        where: { kid, status: 'next' },
        data: { status: 'current', activatedAt: now },
      });
      if (count !== 1) return false;
      await tx.signingKey.updateMany({
        where: { status: 'current', kid: { not: kid } },
        data: { status: 'retired', retiredAt: now },
      });
      return true;
    });
  }

  /** Marks a key revoked (compromised); it leaves the JWKS. Returns its previous status, or null if unknown. */
  async revoke(kid: string, now: Date): Promise<SigningKeyStatus | null> {
    const key = await this.prisma.signingKey.findUnique({ where: { kid } });
    if (!key) return null;
    await this.prisma.signingKey.update({ where: { kid }, data: { status: 'revoked', revokedAt: now } });
    return key.status as SigningKeyStatus;
  }

  /** Replaces the sealed private key of `kid` (re-encryption under a new secret). */
  async updateSealedPrivateKey(kid: string, privateKey: string): Promise<void> {
    await this.prisma.signingKey.update({ where: { kid }, data: { privateKey } });
  }

  /** Deletes retired keys retired before `before`; they signed nothing still valid. */
  async deleteRetiredBefore(before: Date): Promise<number> {
    const { count } = await this.prisma.signingKey.deleteMany({
      where: { status: 'retired', retiredAt: { lt: before } },
    });
    return count;
  }
}
