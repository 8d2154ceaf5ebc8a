import { createHmac, timingSafeEqual } from 'node:crypto';

const UUID_BYTES = 16;
const GENERATION_BYTES = 4;
const MAC_BYTES = 32;
const TOKEN_BYTES = UUID_BYTES + GENERATION_BYTES + MAC_BYTES;
/** The MAC's domain-separation label, followed by the token's prefix in the MAC input. */
const LABEL = Buffer.from('tessera refresh token v1\0');
/** A token's length in base64url (no padding). */
const TOKEN_CHARS = Math.ceil((TOKEN_BYTES * 4) / 3);

/** The parts of a refresh token. */
export interface RefreshTokenParts {
  sessionId: string;
  generation: number;
  mac: Buffer;
  /** The session id and generation bytes, as the MAC covers them. */
  prefix: Buffer;
}

/**
 * Refresh tokens are derived, not stored: token = base64url(session id ‖
 * generation ‖ HMAC-SHA256(session secret, session id ‖ generation)). The
 * 256-bit session secret comes from the CSPRNG and is kept encrypted at rest,
 * so the database holds nothing that could be replayed as a token, and the
 * successor of a rotated token can be handed out again within the reuse grace
 * window without ever having been stored (RFC 9700 §4.14.2).
 */
export function deriveRefreshToken(secret: Buffer, sessionId: string, generation: number): DerivedRefreshToken {
  return derive(secret, tokenPrefix(sessionId, generation));
}

/**
 * The token of `generation` for the session a presented token (`parts`)
 * belongs to: its session id bytes are reused as they are, rather than written
 * out from the id's text again.
 */
export function deriveSuccessorToken(
  secret: Buffer,
  parts: RefreshTokenParts,
  generation: number,
): DerivedRefreshToken {
  return derive(secret, tokenPrefix(parts.prefix, generation));
}

function derive(secret: Buffer, prefix: Buffer): DerivedRefreshToken {
  const tokenMac = mac(secret, prefix);
  return { token: Buffer.concat([prefix, tokenMac]).toString('base64url'), known: { prefix, mac: tokenMac } };
}

/** The MAC of a token this process derived, with the session id and generation bytes it covers. */
export interface KnownMac {
  prefix: Buffer;
  mac: Buffer;
}

/** A refresh token and its {@link KnownMac} (which a later {@link refreshTokenMatches} can use instead of recomputing it). */
export interface DerivedRefreshToken {
  token: string;
  known: KnownMac;
}

/** Splits a presented token; null when it cannot be one of ours. */
export function parseRefreshToken(token: string): RefreshTokenParts | null {
  if (token.length !== TOKEN_CHARS) return null;
  const bytes = Buffer.from(token, 'base64url');
  // Re-encoding must give back the same text. That rejects every character
  // outside base64url's alphabet (the decoder skips them, or reads `+` and `/`
  // as `-` and `_`), padding, and non-canonical last characters.
  if (bytes.length !== TOKEN_BYTES || bytes.toString('base64url') !== token) return null;
  const hex = bytes.subarray(0, UUID_BYTES).toString('hex');
  const sessionId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return {
    sessionId,
    generation: bytes.readUInt32BE(UUID_BYTES),
    mac: bytes.subarray(UUID_BYTES + GENERATION_BYTES),
    prefix: bytes.subarray(0, UUID_BYTES + GENERATION_BYTES),
  };
}

/**
 * Constant-time check that `parts` was derived from `secret`. `known` is a
 * MAC this process derived earlier from the same secret, if it kept one: when
 * it covers the same session id and generation as `parts`, it is compared
 * instead of computing the HMAC again.
 */
export function refreshTokenMatches(secret: Buffer, parts: RefreshTokenParts, known?: KnownMac | null): boolean {
  const expected = known?.prefix.equals(parts.prefix) ? known.mac : mac(secret, parts.prefix);
  return timingSafeEqual(expected, parts.mac);
}

/**
 * Session id ‖ generation. The id is its UUID text, or the bytes of a token
 * prefix that starts with it (a presented token's, copied as they are).
 */
function tokenPrefix(sessionId: string | Buffer, generation: number): Buffer {
  const prefix = Buffer.alloc(UUID_BYTES + GENERATION_BYTES);
  if (typeof sessionId === 'string') prefix.write(sessionId.replaceAll('-', ''), 0, UUID_BYTES, 'hex');
  else sessionId.copy(prefix, 0, 0, UUID_BYTES);
  prefix.writeUInt32BE(generation, UUID_BYTES);
  return prefix;
}

/** HMAC-SHA256(secret, label ‖ prefix), in one update: each update is a call into C++. */
function mac(secret: Buffer, prefix: Buffer): Buffer {
  return createHmac('sha256', secret)
    .update(Buffer.concat([LABEL, prefix]))
    .digest();
}
