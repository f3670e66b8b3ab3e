export { KeyplaneClient, operationIds, type ClientOptions, type CallOptions } from "./client.js";
export {
  KeyplaneError,
  KeyplaneApiError,
  KeyplaneValidationError,
  KeyplaneUnauthorizedError,
  KeyplaneForbiddenError,
  KeyplaneNotFoundError,
  KeyplaneConflictError,
  KeyplaneRateLimitedError,
  KeyplaneUnavailableError,
  type ProblemDetails,
  type FieldProblem,
} from "./errors.js";
export {
  Guard,
  rateLimitHeaders,
  statusOfRefusal,
  type GuardOptions,
  type Identity,
  type CheckInput,
  type Outcome,
  type Admitted,
  type Refused,
  type RequestLike,
  type Logger,
} from "./guard.js";
export { UsageBatcher, type UsageBatcherOptions, type UsageStats } from "./usage.js";
export { Webhook, verifyWebhook, WebhookVerificationError, type WebhookEvent, type WebhookHeaders, type WebhookVerifyOptions } from "./webhooks.js";
export type * from "./types.js";
export type { paths, components, operations } from "./openapi.js";
