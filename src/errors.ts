/**
 * The closed list of errors tessera answers with. Every 4xx/5xx response carries
 * one of these codes; the error handler (src/plugins/error-handler.ts) renders
 * them as RFC 9457 problem details, or as RFC 6749 §5.2 errors on OAuth routes.
 */
export const PROBLEMS = {
  bad_request: { status: 400, title: 'Bad request' },
  validation_failed: { status: 400, title: 'The request is invalid' },
  malformed_body: { status: 400, title: 'The request body could not be parsed' },
  invalid_current_password: { status: 400, title: 'The current password is wrong' },
  password_too_common: { status: 400, title: 'The password is too common' },
  unauthorized: { status: 401, title: 'A valid access token is required' },
  service_unauthorized: { status: 401, title: 'Valid service credentials are required' },
  registration_disabled: { status: 403, title: 'Self-registration is turned off' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  username_taken: { status: 409, title: 'The username is taken' },
  request_timeout: { status: 408, title: 'The request did not arrive in time' },
  body_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  too_many_requests: { status: 429, title: 'Too many requests from this client; slow down' },
  too_many_attempts: { status: 429, title: 'Too many failed login attempts; wait before trying again' },
  headers_too_large: { status: 431, title: 'Request headers are too large' },
  service_unavailable: { status: 503, title: 'The service is temporarily unavailable' },
  internal_error: { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

/** RFC 6749 §5.2 and RFC 7009 §2.2.1 error codes, with their HTTP status. */
export const OAUTH_ERRORS = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  unsupported_token_type: 400,
  invalid_scope: 400,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type OAuthErrorCode = keyof typeof OAUTH_ERRORS;

/** An expected failure on a non-OAuth route, rendered as problem details. */
export class ProblemError extends Error {
  override name = 'ProblemError';
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? PROBLEMS[code].title);
    this.status = PROBLEMS[code].status;
  }
}

/** An expected failure on an OAuth endpoint, rendered as `{error, error_description}`. */
export class OAuthError extends Error {
  override name = 'OAuthError';
  readonly status: number;
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    status?: number,
  ) {
    super(description);
    this.status = status ?? OAUTH_ERRORS[error];
  }
}

/** The database could not be reached; routes that need it answer 503. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}
