// Friendly names for the types generated from keyplane's OpenAPI document
// (src/openapi.ts). Field names are keyplane's own (snake_case), as on the wire.
import type { components, operations } from "./openapi.js";

type S = components["schemas"];

/** Nullable fixes a generated type where the document says less than the server does. */
type Fix<T, K extends keyof T, V> = Omit<T, K> & { [P in K]: V };

export type Account = S["AccountBody"];
export type CreateAccountInput = S["CreateAccountInputBody"];
export type UpdateAccountInput = S["UpdateAccountInputBody"];

export type RateLimitPolicy = S["RateLimitPolicyBody"];
export type KeyQuota = S["QuotaBody"];
/**
 * Key is a key as keyplane shows it (never its plaintext, but in the answer
 * that creates or rolls it: `key`). `quota` is null when the key uses its
 * plan's (the document marks it required without saying it may be null).
 */
export type Key = Fix<S["KeyBody"], "quota", KeyQuota | null>;
export type KeyStatus = Key["status"];
export type CreateKeyInput = S["CreateKeyInputBody"];
export type UpdateKeyInput = S["UpdateKeyInputBody"];
export type RollKeyInput = S["RollKeyInputBody"];
export type RollKeyResult = Fix<S["RollKeyOutputBody"], "key", Key & { key: string }>;
export type KeyQuotaUsage = S["QuotaUsageBody"];

/** Plan: `quota` is null when the plan has none (the document marks it required without saying it may be null). */
export type Plan = Fix<S["PlanBody"], "quota", S["PlanBody"]["quota"] | null>;
export type CreatePlanInput = S["CreatePlanInputBody"];
export type UpdatePlanInput = S["UpdatePlanInputBody"];

export type Member = S["MemberBody"];
export type Invite = S["InviteBody"];
export type InviteMemberInput = S["InviteMemberInputBody"];
export type UpdateMemberInput = S["UpdateMemberInputBody"];

export type AuditEvent = S["AuditEventBody"];
export type AuditQuery = NonNullable<operations["listAudit"]["parameters"]["query"]>;
export type AccountAuditQuery = NonNullable<operations["listAccountAudit"]["parameters"]["query"]>;

export type UsageReport = S["UsageReportBody"];
export type UsageQuery = Omit<NonNullable<operations["getKeyUsage"]["parameters"]["query"]>, "format">;
export type UsageEvent = S["UsageEventBody"];

export type VerifyRequest = S["VerifyRequest"];
export type VerifyResponse = S["VerifyResponse"];
export type VerifyCode = VerifyResponse["code"];
export type RateLimitInfo = S["RateLimitInfo"];
export type QuotaInfo = S["QuotaInfo"];

/** Page is one page of a list: `next_cursor` is empty on the last. */
export interface Page<T> {
  data: T[];
  next_cursor: string;
}

export interface PageQuery {
  /** 1–100, default 20. */
  limit?: number;
  cursor?: string;
}

/**
 * WebhookEndpoint is a webhook endpoint (`whk_…`) as keyplane shows it:
 * never its secret, which only the answers to create and rotateSecret carry
 * (WebhookEndpointWithSecret). `account_id` is absent for the operator's own
 * endpoints. `events` is always a list (the document allows null).
 */
export type WebhookEndpoint = Fix<Omit<S["WebhookBody"], "secret">, "events", string[]>;
/** WebhookEndpointWithSecret is the answer to create and rotateSecret: `secret` (`whsec_…`) is shown this once. */
export type WebhookEndpointWithSecret = WebhookEndpoint & { secret: string };
export type CreateWebhookInput = S["WebhookFields"];
/** UpdateWebhookInput: `events` replaces the list (`[]`: every event); keyplane refuses null, which the document allows. */
export type UpdateWebhookInput = Omit<S["UpdateWebhookInputBody"], "events"> & { events?: string[] };
export type RotateWebhookSecretInput = S["RotateSecretInputBody"];
/** RecoverWebhookInput: `since` as RFC 3339, or a Date. */
export type RecoverWebhookInput = { since: string | Date };
export type WebhookAttempt = S["AttemptBody"];
/**
 * WebhookMessage is a message sent to an endpoint (`msg_…`, its deliveries'
 * webhook-id) with its attempts, oldest first. `payload` is the body
 * delivered; `attempts` is always a list (the document allows null).
 */
export type WebhookMessage = Omit<S["DeliveryBody"], "attempts" | "payload"> & {
  attempts: WebhookAttempt[];
  payload: { type: string; timestamp: string; data: Record<string, unknown> };
};
export type WebhookMessageStatus = WebhookMessage["status"];
/** TestWebhookResult names the `webhook.test` message sent. */
export type TestWebhookResult = S["TestOutputBody"];
/** RequeueResult: how many deliveries got one more attempt. */
export type RequeueResult = S["CountOutputBody"];
/** PublishEventInput is an operator's own event: `type` like `invoice.paid`, `data` a JSON object (64 KiB at most). */
export type PublishEventInput<T extends Record<string, unknown> = Record<string, unknown>> = Omit<S["PublishEventInputBody"], "data"> & { data: T };
/** PublishEventResult: the message id (`msg_…`); `duplicate` when the idempotency key was used before with the same event. */
export type PublishEventResult = S["PublishEventOutputBody"];

/** TokenRole: `admin` manages keyplane (or one account, with `account_id`); `verify` verifies keys, reports usage and answers forward-auth. */
export type TokenRole = S["TokenBody"]["role"];
/** TokenStatus: `revoked` wins over `expired`. */
export type TokenStatus = S["TokenBody"]["status"];
/**
 * Token is an operator token (`tok_…`) as keyplane shows it: never the
 * secret, which only the answer to create carries (CreatedToken).
 * `account_id` is absent for an operator-wide token.
 */
export type Token = S["TokenBody"];
/** CreatedToken is the answer to create: `token` (`kpt_…`) is the plaintext, shown this once. */
export type CreatedToken = Token & { token: string };
/**
 * CreateTokenInput: `account_id` scopes an admin token to that account
 * (verify tokens cannot be scoped); `expires_at` as RFC 3339, or a Date.
 * `role` is one of two (the document says only string).
 */
export type CreateTokenInput = Omit<S["CreateTokenInputBody"], "role" | "expires_at"> & { role: TokenRole; expires_at?: string | Date };
/** RevokeTokenInput: `force` revokes even the last usable operator-wide admin token. */
export type RevokeTokenInput = S["RevokeTokenInputBody"];
