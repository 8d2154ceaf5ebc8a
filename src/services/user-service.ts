import { randomUUID } from 'node:crypto';
import { ProblemError } from '../errors.js';
import type { UserRecord, UserRepository } from '../repositories/user-repository.js';
import { defaultBlocklist } from './password-blocklist.js';
import type { PasswordHasher } from './password-hasher.js';
import { canonicalUsername } from './usernames.js';

/** NIST SP 800-63B §5.1.1.2: at least 8 characters, no composition rules, long passphrases allowed. */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 1024;

/** Returns why `password` is unacceptable, or null. Lengths count Unicode code points. */
export function passwordProblem(password: string): string | null {
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return `password must be at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `password must be at most ${PASSWORD_MAX_LENGTH} characters`;
  return null;
}

/**
 * NIST SP 800-63B §5.1.1.2: refuses a new password found in the bundled list
 * of commonly used and breached passwords (assets/common-passwords.bin).
 */
function refuseCommonPassword(password: string): void {
  const problem = passwordProblem(password);
  if (problem) throw new ProblemError('validation_failed', problem);
  if (defaultBlocklist().has(password)) {
    throw new ProblemError(
      'password_too_common',
      'this password appears in lists of common and breached passwords; choose another',
    );
  }
}

/** Registration, credential checks and password changes. */
export class UserService {
  constructor(
    private readonly users: UserRepository,
    private readonly hasher: PasswordHasher,
    private readonly now: () => number,
  ) {}

  /** Creates a user; throws `username_taken` or `validation_failed` problems. */
  async register(username: string, password: string, roles: string[] = []): Promise<UserRecord> {
    const canonical = canonicalUsername(username);
    if ('error' in canonical) throw new ProblemError('validation_failed', canonical.error);
    refuseCommonPassword(password);
    const user = await this.users.create({
      id: randomUUID(),
      username: canonical.display,
      usernameKey: canonical.key,
      passwordHash: await this.hasher.hash(password),
      roles,
    });
    if (!user) throw new ProblemError('username_taken', `the username "${canonical.display}" is taken`);
    return user;
  }

  /**
   * Returns the active user whose credentials these are, or null. Unknown,
   * disabled and wrong-password cases cost the same argon2 work, so neither the
   * answer nor its timing tells whether the account exists. `abandoned` says
   * whether the client has gone (see {@link PasswordHasher.verify}).
   */
  async authenticate(username: string, password: string, abandoned?: () => boolean): Promise<UserRecord | null> {
    const canonical = canonicalUsername(username);
    const user = 'error' in canonical ? null : await this.users.findByUsernameKey(canonical.key);
    if (!user) {
      await this.hasher.verifyAgainstDummy(password, abandoned);
      return null;
    }
    const check = await this.hasher.verify(user.passwordHash, password, abandoned);
    if (!check.ok || user.disabledAt) return null;
    if (check.needsRehash) {
      // The configured argon2 parameters changed since this hash was made.
      await this.users.upgradePasswordHash(user.id, user.passwordHash, await this.hasher.hash(password));
    }
    return user;
  }

  async findById(id: string): Promise<UserRecord | null> {
    return this.users.findById(id);
  }

  /** Changes the password and ends every other session of the user. */
  async changePassword(
    userId: string,
    keepSessionId: string | null,
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const user = await this.users.findById(userId);
    if (!user || user.disabledAt) throw new ProblemError('unauthorized', 'the account is not active');
    const check = await this.hasher.verify(user.passwordHash, currentPassword);
    if (!check.ok) throw new ProblemError('invalid_current_password');
    refuseCommonPassword(newPassword);
    await this.users.changePassword(userId, await this.hasher.hash(newPassword), keepSessionId, new Date(this.now()));
  }

  /** Disables an account and ends its sessions; returns the user's id, or null when there is no such user. */
  async disable(username: string): Promise<string | null> {
    const canonical = canonicalUsername(username);
    if ('error' in canonical) return null;
    const user = await this.users.findByUsernameKey(canonical.key);
    if (!user) return null;
    return (await this.users.disable(canonical.key, new Date(this.now()))) ? user.id : null;
  }

  /** The user with this username (compared as registration does), or null. */
  async findByUsername(username: string): Promise<UserRecord | null> {
    const canonical = canonicalUsername(username);
    return 'error' in canonical ? null : this.users.findByUsernameKey(canonical.key);
  }
}
