import { randomUUID } from 'node:crypto';
import { ProblemError } from '../errors.js';
import type { UserRecord, UserRepository } from '../repositories/user-repository.js';
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
    const problem = passwordProblem(password);
    if (problem) throw new ProblemError('validation_failed', problem);
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
   * answer nor its timing tells whether the account exists.
   */
  async authenticate(username: string, password: string): Promise<UserRecord | null> {
    const canonical = canonicalUsername(username);
    const user = 'error' in canonical ? null : await this.users.findByUsernameKey(canonical.key);
    if (!user) {
      await this.hasher.verifyAgainstDummy(password);
      return null;
    }
    const check = await this.hasher.verify(user.passwordHash, password);
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
    const problem = passwordProblem(newPassword);
    if (problem) throw new ProblemError('validation_failed', problem);
    await this.users.changePassword(userId, await this.hasher.hash(newPassword), keepSessionId, new Date(this.now()));
  }

  /** Disables an account and ends its sessions; false when there is no such user. */
  async disable(username: string): Promise<boolean> {
    const canonical = canonicalUsername(username);
    if ('error' in canonical) return false;
    return this.users.disable(canonical.key, new Date(this.now()));
  }
}
