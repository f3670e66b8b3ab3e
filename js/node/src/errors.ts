import type { components } from "./openapi.js";

/** FieldProblem says what was wrong with one input of a 400. */
export type FieldProblem = components["schemas"]["FieldProblem"];

/** ProblemDetails is keyplane's RFC 9457 problem body. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  /** keyplane's stable error code: invalid, not_found, conflict, limit, unauthorized, forbidden, unavailable, internal, … */
  code: string;
  errors?: FieldProblem[];
}

/** KeyplaneError is the base of every error this package throws. */
export class KeyplaneError extends Error {
  override name = "KeyplaneError";
}

/**
 * KeyplaneApiError is a problem details answer from keyplane (a 4xx or 5xx).
 * Subclasses name the common statuses; `code` is keyplane's error code.
 */
export class KeyplaneApiError extends KeyplaneError {
  override name = "KeyplaneApiError";
  readonly status: number;
  readonly code: string;
  readonly type: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldProblem[];
  /** requestId is keyplane's X-Request-Id, for its logs. */
  readonly requestId: string | undefined;
  readonly method: string;
  readonly path: string;

  constructor(problem: ProblemDetails, method: string, path: string, requestId?: string) {
    super(`${method} ${path}: ${problem.status} ${problem.code}${problem.detail ? ": " + problem.detail : ""}`);
    this.status = problem.status;
    this.code = problem.code;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = problem.errors ?? [];
    this.requestId = requestId;
    this.method = method;
    this.path = path;
  }

  /** problem is the body keyplane sent. */
  get problem(): ProblemDetails {
    const p: ProblemDetails = { type: this.type, title: this.title, status: this.status, code: this.code };
    if (this.detail !== undefined) p.detail = this.detail;
    if (this.errors.length) p.errors = this.errors;
    return p;
  }
}

/** 400: the request was malformed; `errors` names each bad field. */
export class KeyplaneValidationError extends KeyplaneApiError {
  override name = "KeyplaneValidationError";
}
/** 401: the token is missing, unknown, revoked or expired. */
export class KeyplaneUnauthorizedError extends KeyplaneApiError {
  override name = "KeyplaneUnauthorizedError";
}
/** 403: the token may not do this (a verify token on an admin route, an account-scoped token on an operator-wide one or on verify). */
export class KeyplaneForbiddenError extends KeyplaneApiError {
  override name = "KeyplaneForbiddenError";
}
/** 404: no such account, key or plan (or another account's). */
export class KeyplaneNotFoundError extends KeyplaneApiError {
  override name = "KeyplaneNotFoundError";
}
/** 409: a conflict (a revoked key changed, a name taken) or a limit (max keys). */
export class KeyplaneConflictError extends KeyplaneApiError {
  override name = "KeyplaneConflictError";
}
/** 429: too many requests. */
export class KeyplaneRateLimitedError extends KeyplaneApiError {
  override name = "KeyplaneRateLimitedError";
}

/**
 * KeyplaneUnavailableError: keyplane could not be reached or did not answer
 * in time (after the retries an idempotent call gets), or answered 5xx.
 * `cause` is the last underlying error; `status` is set for a 5xx answer.
 */
export class KeyplaneUnavailableError extends KeyplaneError {
  override name = "KeyplaneUnavailableError";
  readonly status: number | undefined;
  /** problem is keyplane's body, when it answered 502, 503 or 504 with one. */
  readonly problem: ProblemDetails | undefined;
  readonly attempts: number;
  readonly timedOut: boolean;
  constructor(
    message: string,
    opts: { cause?: unknown; status?: number; problem?: ProblemDetails; attempts: number; timedOut: boolean },
  ) {
    super(message, { cause: opts.cause });
    this.status = opts.status;
    this.problem = opts.problem;
    this.attempts = opts.attempts;
    this.timedOut = opts.timedOut;
  }
}

const byStatus: Record<number, typeof KeyplaneApiError> = {
  400: KeyplaneValidationError,
  401: KeyplaneUnauthorizedError,
  403: KeyplaneForbiddenError,
  404: KeyplaneNotFoundError,
  409: KeyplaneConflictError,
  422: KeyplaneValidationError,
  429: KeyplaneRateLimitedError,
};

/** apiError builds the typed error for a problem answer. */
export function apiError(problem: ProblemDetails, method: string, path: string, requestId?: string): KeyplaneApiError {
  const Ctor = byStatus[problem.status] ?? KeyplaneApiError;
  return new Ctor(problem, method, path, requestId);
}
