import { Transport, type CallOptions, type Query, type TransportOptions } from "./http.js";
import type { operations } from "./openapi.js";
import type {
  Account,
  AccountAuditQuery,
  AuditEvent,
  AuditQuery,
  CreateAccountInput,
  CreateKeyInput,
  CreatePlanInput,
  CreateTokenInput,
  CreateWebhookInput,
  CreatedToken,
  Invite,
  InviteMemberInput,
  Key,
  KeyQuotaUsage,
  KeyStatus,
  Member,
  Page,
  PageQuery,
  Plan,
  PublishEventInput,
  PublishEventResult,
  RecoverWebhookInput,
  RequeueResult,
  RevokeTokenInput,
  RollKeyInput,
  RollKeyResult,
  RotateWebhookSecretInput,
  TestWebhookResult,
  Token,
  UpdateAccountInput,
  UpdateKeyInput,
  UpdateMemberInput,
  UpdatePlanInput,
  UpdateWebhookInput,
  UsageEvent,
  UsageQuery,
  UsageReport,
  VerifyRequest,
  VerifyResponse,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
  WebhookMessage,
} from "./types.js";

export type ClientOptions = TransportOptions;
export type { CallOptions };

/**
 * operationIds are the operations of keyplane's OpenAPI document this
 * client implements (test/openapi.test.ts checks the document has no other
 * admin operation, and the compiler that each still exists).
 */
export const operationIds = [
  "healthz",
  "readyz",
  "listAccounts",
  "createAccount",
  "getAccount",
  "updateAccount",
  "listAccountAudit",
  "listInvites",
  "listKeys",
  "createKey",
  "listMembers",
  "inviteMember",
  "getAccountUsage",
  "listAudit",
  "cancelInvite",
  "getKey",
  "updateKey",
  "getKeyQuota",
  "resetKeyQuota",
  "revokeKey",
  "rollKey",
  "getKeyUsage",
  "updateMember",
  "listPlans",
  "createPlan",
  "getPlan",
  "updatePlan",
  "reportUsage",
  "verifyKey",
  "listAccountWebhooks",
  "createAccountWebhook",
  "listOperatorWebhooks",
  "createOperatorWebhook",
  "getWebhook",
  "updateWebhook",
  "deleteWebhook",
  "rotateWebhookSecret",
  "testWebhook",
  "listWebhookMessages",
  "retryMessage",
  "recoverWebhook",
  "publishEvent",
  "listTokens",
  "createToken",
  "getToken",
  "revokeToken",
  "reportLeakedKey",
  "deleteMember",
  "changeMemberPassword",
  "issuePasswordReset",
] as const satisfies readonly (keyof operations)[];

const seg = encodeURIComponent;

function page<T>(p: { data: T[] | null; next_cursor: string }): Page<T> {
  return { data: p.data ?? [], next_cursor: p.next_cursor };
}

/**
 * KeyplaneClient calls keyplane's HTTP API: the admin API with an admin
 * token, and verify / usage reports with a verify token.
 *
 * Every call takes `{signal, timeoutMs}`. GETs and verify are retried on
 * network errors and 502/503/504 with exponential backoff, within the
 * timeout; calls that change something are sent once. Problem details
 * answers throw KeyplaneApiError subclasses (KeyplaneNotFoundError, …);
 * keyplane out of reach throws KeyplaneUnavailableError.
 */
export class KeyplaneClient {
  /** @internal */
  readonly transport: Transport;

  constructor(opts: ClientOptions) {
    this.transport = new Transport(opts);
  }

  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  private get<T>(path: string, query?: Query, o?: CallOptions) {
    return this.transport.json<T>({ method: "GET", path, query, idempotent: true }, o);
  }
  private send<T>(method: string, path: string, body?: unknown, o?: CallOptions) {
    return this.transport.json<T>({ method, path, body, idempotent: false }, o);
  }

  /** verify asks whether a key may make a request: an answer for every outcome (`valid`, `code`). Retried like a GET. */
  verify(req: VerifyRequest, o?: CallOptions): Promise<VerifyResponse> {
    return this.transport.json<VerifyResponse>({ method: "POST", path: "/v1/verify", body: req, idempotent: true }, o);
  }

  /** healthz: liveness. */
  healthz(o?: CallOptions) {
    return this.get<operations["healthz"]["responses"][200]["content"]["application/json"]>("/healthz", undefined, o);
  }
  /** readyz: readiness (throws KeyplaneUnavailableError while the database does not answer). */
  readyz(o?: CallOptions) {
    return this.get<operations["readyz"]["responses"][200]["content"]["application/json"]>("/readyz", undefined, o);
  }

  readonly accounts = {
    create: (input: CreateAccountInput, o?: CallOptions) => this.send<Account>("POST", "/v1/accounts", input, o),
    list: async (q: PageQuery = {}, o?: CallOptions) => page(await this.get<{ data: Account[] | null; next_cursor: string }>("/v1/accounts", { ...q }, o)),
    /** all iterates every account, page after page. */
    all: (o?: CallOptions) => this.iterate((cursor) => this.accounts.list({ limit: 100, cursor }, o)),
    get: (id: string, o?: CallOptions) => this.get<Account>(`/v1/accounts/${seg(id)}`, undefined, o),
    update: (id: string, input: UpdateAccountInput, o?: CallOptions) => this.send<Account>("PATCH", `/v1/accounts/${seg(id)}`, input, o),
    usage: (id: string, q: UsageQuery = {}, o?: CallOptions) => this.get<UsageReport>(`/v1/accounts/${seg(id)}/usage`, { ...q }, o),
    usageCsv: (id: string, q: UsageQuery = {}, o?: CallOptions) =>
      this.transport.text({ method: "GET", path: `/v1/accounts/${seg(id)}/usage`, query: { ...q, format: "csv" }, idempotent: true, accept: "text/csv" }, o),
    audit: async (id: string, q: AccountAuditQuery = {}, o?: CallOptions) =>
      page(await this.get<{ data: AuditEvent[] | null; next_cursor: string }>(`/v1/accounts/${seg(id)}/audit`, { ...q }, o)),
    members: async (id: string, q: PageQuery = {}, o?: CallOptions) =>
      page(await this.get<{ data: Member[] | null; next_cursor: string }>(`/v1/accounts/${seg(id)}/members`, { ...q }, o)),
    invite: (id: string, input: InviteMemberInput, o?: CallOptions) => this.send<Invite>("POST", `/v1/accounts/${seg(id)}/members`, input, o),
    invites: (id: string, o?: CallOptions) =>
      this.get<operations["listInvites"]["responses"][200]["content"]["application/json"]>(`/v1/accounts/${seg(id)}/invites`, undefined, o),
  };

  readonly keys = {
    /** create issues a key; the answer's `key` is the plaintext, shown this once. */
    create: (accountId: string, input: CreateKeyInput, o?: CallOptions) =>
      this.send<Key & { key: string }>("POST", `/v1/accounts/${seg(accountId)}/keys`, input, o),
    list: async (accountId: string, q: PageQuery & { status?: KeyStatus } = {}, o?: CallOptions) =>
      page(await this.get<{ data: Key[] | null; next_cursor: string }>(`/v1/accounts/${seg(accountId)}/keys`, { ...q }, o)),
    /** all iterates every key of an account, page after page. */
    all: (accountId: string, q: { status?: KeyStatus } = {}, o?: CallOptions) =>
      this.iterate((cursor) => this.keys.list(accountId, { ...q, limit: 100, cursor }, o)),
    get: (id: string, o?: CallOptions) => this.get<Key>(`/v1/keys/${seg(id)}`, undefined, o),
    update: (id: string, input: UpdateKeyInput, o?: CallOptions) => this.send<Key>("PATCH", `/v1/keys/${seg(id)}`, input, o),
    revoke: (id: string, o?: CallOptions) => this.send<Key>("POST", `/v1/keys/${seg(id)}/revoke`, undefined, o),
    /**
     * reportLeaked reports a key found where it should not be; the server
     * revokes, disables or only flags it (its --leak-action). Reporting again
     * changes nothing (`first_report: false`). Not retried.
     */
    reportLeaked: (input: { key: string; source_url?: string }, o?: CallOptions) =>
      this.send<{ key: Key; first_report: boolean; action: "revoke" | "disable" | "notify" }>("POST", "/v1/keys/leaked", input, o),
    /** roll issues a successor; the old key keeps working for overlap_seconds. */
    roll: (id: string, input: RollKeyInput, o?: CallOptions) => this.send<RollKeyResult>("POST", `/v1/keys/${seg(id)}/roll`, input, o),
    quota: (id: string, o?: CallOptions) => this.get<KeyQuotaUsage>(`/v1/keys/${seg(id)}/quota`, undefined, o),
    resetQuota: (id: string, o?: CallOptions) => this.send<KeyQuotaUsage>("POST", `/v1/keys/${seg(id)}/quota/reset`, undefined, o),
    usage: (id: string, q: UsageQuery = {}, o?: CallOptions) => this.get<UsageReport>(`/v1/keys/${seg(id)}/usage`, { ...q }, o),
    usageCsv: (id: string, q: UsageQuery = {}, o?: CallOptions) =>
      this.transport.text({ method: "GET", path: `/v1/keys/${seg(id)}/usage`, query: { ...q, format: "csv" }, idempotent: true, accept: "text/csv" }, o),
  };

  readonly plans = {
    create: (input: CreatePlanInput, o?: CallOptions) => this.send<Plan>("POST", "/v1/plans", input, o),
    list: async (q: PageQuery = {}, o?: CallOptions) => page(await this.get<{ data: Plan[] | null; next_cursor: string }>("/v1/plans", { ...q }, o)),
    get: (name: string, o?: CallOptions) => this.get<Plan>(`/v1/plans/${seg(name)}`, undefined, o),
    update: (name: string, input: UpdatePlanInput, o?: CallOptions) => this.send<Plan>("PATCH", `/v1/plans/${seg(name)}`, input, o),
  };

  readonly members = {
    update: (id: string, input: UpdateMemberInput, o?: CallOptions) => this.send<Member>("PATCH", `/v1/members/${seg(id)}`, input, o),
    /** delete removes a member (not an account's last owner: 409); their sessions end at once. Not retried. */
    delete: (id: string, o?: CallOptions) => this.send<void>("DELETE", `/v1/members/${seg(id)}`, undefined, o),
    /** changePassword changes a member's own password: only with that member's portal session (403 otherwise). Not retried. */
    changePassword: (id: string, input: { current_password: string; new_password: string }, o?: CallOptions) =>
      this.send<void>("POST", `/v1/members/${seg(id)}/password`, input, o),
    /** issuePasswordReset makes a single-use reset link, valid for an hour; `reset_url` is in this answer only. Not retried. */
    issuePasswordReset: (id: string, o?: CallOptions) =>
      this.send<{ id: string; member_id: string; email: string; expires_at: string; reset_url: string }>("POST", `/v1/members/${seg(id)}/password-reset`, undefined, o),
    cancelInvite: (id: string, o?: CallOptions) => this.send<void>("DELETE", `/v1/invites/${seg(id)}`, undefined, o),
  };

  readonly audit = {
    list: async (q: AuditQuery = {}, o?: CallOptions) => page(await this.get<{ data: AuditEvent[] | null; next_cursor: string }>("/v1/audit", { ...q }, o)),
    /** all iterates every matching event, newest first. */
    all: (q: Omit<AuditQuery, "cursor" | "limit"> = {}, o?: CallOptions) => this.iterate((cursor) => this.audit.list({ ...q, limit: 100, cursor }, o)),
  };

  readonly usage = {
    /**
     * report sends the outcomes of requests keyplane verified (status,
     * latency): at most 1,000 events, recorded whole or refused whole. Not retried.
     */
    report: (events: UsageEvent[], o?: CallOptions) => this.send<{ accepted: number }>("POST", "/v1/usage", { events }, o),
  };

  /**
   * webhooks manages webhook endpoints (`whk_…`): an account's, which receive
   * its keyplane events and the events you publish to it (`events.publish`),
   * and the operator's own, which receive every account's keyplane events.
   * Secrets (`whsec_…`) are in the answers to create and rotateSecret only;
   * verify deliveries with `Webhook` from `@keyplane/node/webhooks`.
   * Webhook routes answer 503 (KeyplaneUnavailableError) on a server without
   * a secrets key.
   */
  readonly webhooks = {
    /** create registers an endpoint for an account (at most 20 each); the answer's `secret` is shown this once. */
    create: (accountId: string, input: CreateWebhookInput, o?: CallOptions) =>
      this.send<WebhookEndpointWithSecret>("POST", `/v1/accounts/${seg(accountId)}/webhooks`, input, o),
    /** list is one page of an account's endpoints. */
    list: async (accountId: string, q: PageQuery = {}, o?: CallOptions) =>
      page(await this.get<{ data: WebhookEndpoint[] | null; next_cursor: string }>(`/v1/accounts/${seg(accountId)}/webhooks`, { ...q }, o)),
    /** all iterates every endpoint of an account, page after page. */
    all: (accountId: string, o?: CallOptions) => this.iterate((cursor) => this.webhooks.list(accountId, { limit: 100, cursor }, o)),
    /** createOperator registers one of the operator's own endpoints (no account: it receives every account's keyplane events, not published ones); `secret` is shown this once. */
    createOperator: (input: CreateWebhookInput, o?: CallOptions) => this.send<WebhookEndpointWithSecret>("POST", "/v1/webhooks", input, o),
    /** listOperator is one page of the operator's own endpoints. */
    listOperator: async (q: PageQuery = {}, o?: CallOptions) =>
      page(await this.get<{ data: WebhookEndpoint[] | null; next_cursor: string }>("/v1/webhooks", { ...q }, o)),
    /** allOperator iterates every one of the operator's own endpoints. */
    allOperator: (o?: CallOptions) => this.iterate((cursor) => this.webhooks.listOperator({ limit: 100, cursor }, o)),
    /** get reads an endpoint (never its secret). */
    get: (id: string, o?: CallOptions) => this.get<WebhookEndpoint>(`/v1/webhooks/${seg(id)}`, undefined, o),
    /** update changes an endpoint: `events` replaces the list; `enabled: true` also re-enables one keyplane disabled. */
    update: (id: string, input: UpdateWebhookInput, o?: CallOptions) => this.send<WebhookEndpoint>("PATCH", `/v1/webhooks/${seg(id)}`, input, o),
    /** delete removes an endpoint and its message log. */
    delete: (id: string, o?: CallOptions) => this.send<void>("DELETE", `/v1/webhooks/${seg(id)}`, undefined, o),
    /**
     * rotateSecret gives an endpoint a new secret, shown in this answer only.
     * For `overlap_seconds` (default 86400, 0 ends the old one at once, at
     * most 604800) deliveries carry a signature for each.
     */
    rotateSecret: (id: string, input: RotateWebhookSecretInput = {}, o?: CallOptions) =>
      this.send<WebhookEndpointWithSecret>("POST", `/v1/webhooks/${seg(id)}/rotate-secret`, input, o),
    /** test sends a `webhook.test` event to this endpoint alone (KeyplaneConflictError if it is disabled). */
    test: (id: string, o?: CallOptions) => this.send<TestWebhookResult>("POST", `/v1/webhooks/${seg(id)}/test`, undefined, o),
    /** messages is one page of the messages sent to an endpoint, newest first, each with its attempts. */
    messages: async (id: string, q: PageQuery = {}, o?: CallOptions) =>
      page(await this.get<{ data: WebhookMessage[] | null; next_cursor: string }>(`/v1/webhooks/${seg(id)}/messages`, { ...q }, o)),
    /** allMessages iterates every message sent to an endpoint, newest first. */
    allMessages: (id: string, o?: CallOptions) => this.iterate((cursor) => this.webhooks.messages(id, { limit: 100, cursor }, o)),
    /** retryMessage sends a message (`msg_…`) again, once, to the caller's endpoints it went to. */
    retryMessage: (messageId: string, o?: CallOptions) => this.send<RequeueResult>("POST", `/v1/messages/${seg(messageId)}/retry`, undefined, o),
    /** recover gives each message raised since `since` whose delivery to this endpoint failed one more attempt. */
    recover: (id: string, input: RecoverWebhookInput, o?: CallOptions) =>
      this.send<RequeueResult>("POST", `/v1/webhooks/${seg(id)}/recover`, { since: input.since instanceof Date ? input.since.toISOString() : input.since }, o),
  };

  readonly events = {
    /**
     * publish sends your own event (`invoice.paid`, …) to the account's
     * endpoints subscribed to its type (operators only; not to the
     * operator's own endpoints). With the same `idempotency_key` again, the
     * first message's id and `duplicate: true` (KeyplaneConflictError with
     * other data). Not retried: pass an idempotency key and retry yourself.
     */
    publish: <T extends Record<string, unknown>>(accountId: string, input: PublishEventInput<T>, o?: CallOptions) =>
      this.send<PublishEventResult>("POST", `/v1/accounts/${seg(accountId)}/events`, input, o),
  };

  /**
   * tokens manages operator tokens (`tok_…`; the secret is `kpt_…`), the
   * bearer tokens of keyplane's own API: `admin` (everything, or one account
   * with `account_id`) and `verify` (verify, usage reports, forward-auth).
   * Operator-wide admin tokens only: an account-scoped token gets
   * KeyplaneForbiddenError here.
   */
  readonly tokens = {
    /**
     * create issues a token; the answer's `token` is the plaintext, shown
     * this once (keyplane keeps only its SHA-256). An unknown `account_id`,
     * a scoped verify token or a past `expires_at` is KeyplaneValidationError.
     */
    create: (input: CreateTokenInput, o?: CallOptions) =>
      this.send<CreatedToken>(
        "POST",
        "/v1/tokens",
        { ...input, ...(input.expires_at instanceof Date ? { expires_at: input.expires_at.toISOString() } : {}) },
        o,
      ),
    /** list is one page of the tokens, newest first, each with its `status` (never a secret). */
    list: async (q: PageQuery = {}, o?: CallOptions) => page(await this.get<{ data: Token[] | null; next_cursor: string }>("/v1/tokens", { ...q }, o)),
    /** all iterates every token, newest first, page after page. */
    all: (o?: CallOptions) => this.iterate((cursor) => this.tokens.list({ limit: 100, cursor }, o)),
    /** get reads a token (never its secret). */
    get: (id: string, o?: CallOptions) => this.get<Token>(`/v1/tokens/${seg(id)}`, undefined, o),
    /**
     * revoke refuses the token from now on, on every instance (the others
     * within milliseconds). Revoking the last usable operator-wide admin
     * token is KeyplaneConflictError unless `{ force: true }`. Revoking a
     * revoked token answers it as it is.
     */
    revoke: (id: string, input: RevokeTokenInput = {}, o?: CallOptions) => this.send<Token>("POST", `/v1/tokens/${seg(id)}/revoke`, input, o),
  };

  private async *iterate<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>): AsyncGenerator<T> {
    let cursor: string | undefined;
    do {
      const p = await fetchPage(cursor);
      yield* p.data;
      cursor = p.next_cursor || undefined;
    } while (cursor);
  }
}
