/** Bounds on usernames, counted in Unicode code points after normalization. */
export const USERNAME_MIN_LENGTH = 1;
export const USERNAME_MAX_LENGTH = 64;

/** A username in its two forms. */
export interface CanonicalUsername {
  /** NFC form, kept for display. */
  display: string;
  /**
   * NFKC + lowercased form (the simple case mapping of `toLowerCase`, not full
   * case folding): usernames that differ only in width or case share a key.
   * Changing this rule changes stored keys, so it would need a migration.
   */
  key: string;
}

// Control, format, unassigned and private-use code points (\p{C}), and any white space.
const FORBIDDEN = /[\p{C}\s]/u;

/**
 * Canonicalizes a username so uniqueness holds case-insensitively after
 * Unicode normalization ("Ａlice", "alice" and "ALICE" are one user). Returns
 * null with a reason when the username is not acceptable.
 */
export function canonicalUsername(input: string): CanonicalUsername | { error: string } {
  const display = input.normalize('NFC');
  const key = display.normalize('NFKC').toLowerCase().normalize('NFKC');
  const length = [...display].length;
  if (length < USERNAME_MIN_LENGTH || length > USERNAME_MAX_LENGTH) {
    return { error: `username must be ${USERNAME_MIN_LENGTH} to ${USERNAME_MAX_LENGTH} characters` };
  }
  if (FORBIDDEN.test(display) || FORBIDDEN.test(key)) {
    return { error: 'username must not contain spaces or control characters' };
  }
  return { display, key };
}
