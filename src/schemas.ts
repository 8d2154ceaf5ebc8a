import { Type } from 'typebox';
import { ProblemError } from './errors.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './services/user-service.js';
import { USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH } from './services/usernames.js';

/** RFC 9457 problem details, the error shape of every non-OAuth route. */
export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    instance: Type.Optional(Type.String()),
    requestId: Type.String(),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: 'Per-field validation errors',
      }),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
);

/** RFC 6749 §5.2 error response. */
export const OAuthErrorBody = Type.Object(
  {
    error: Type.String(),
    error_description: Type.Optional(Type.String()),
  },
  { $id: 'OAuthError', description: 'RFC 6749 §5.2 error response' },
);

export const ProblemRef = Type.Ref('Problem');
export const OAuthErrorRef = Type.Ref('OAuthError');

export const Username = Type.String({
  minLength: USERNAME_MIN_LENGTH,
  maxLength: USERNAME_MAX_LENGTH,
  description: 'Unique case-insensitively after Unicode normalization; no spaces or control characters',
});
export const Password = Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH });

export const Timestamp = Type.String({ format: 'date-time' });

/**
 * A `date-time` query parameter as a Date. The format admits a few forms
 * Date.parse cannot read (a leap second, an offset without minutes); those are
 * a 400 naming the parameter, and an invalid Date never reaches a query.
 */
export function parseTimestamp(name: string, value: string): Date {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new ProblemError('validation_failed', `${name} must be an RFC 3339 date-time such as 2030-01-01T00:00:00Z`);
  }
  return new Date(ms);
}

/** Standard error responses for problem-details routes, by status. */
export function problems(...statuses: number[]): Record<number, typeof ProblemRef> {
  return Object.fromEntries(statuses.map((status) => [status, ProblemRef]));
}
