// The framework-free core of the middleware: find the key, answer from the
// cache or ask keyplane, and turn the answer into an admission (with the
// key's identity) or a refusal (status, problem details, headers).
import * as nodeCrypto from "node:crypto";
import { KeyplaneClient } from "./client.js";
import { KeyplaneApiError } from "./errors.js";
import type { ProblemDetails } from "./errors.js";
import type { VerifyCode, VerifyResponse } from "./types.js";
import { UsageBatcher, type UsageBatcherOptions, type UsageStats } from "./usage.js";

export interface Logger {
  warn(message: string): void;
}

export interface GuardOptions {
  /** baseUrl is keyplane's, e.g. "http://127.0.0.1:8080". Required unless `client` is given. */
  baseUrl?: string;
  /** token is an operator token of role verify (`keyplane token create --name api --role verify`). */
  token?: string;
  /** client replaces baseUrl/token/timeoutMs/retries with a client of your own. */
  client?: KeyplaneClient;
  /** timeoutMs bounds each verification, retries included; past it the request is answered 503 (or let through with failOpen). Default 3000. */
  timeoutMs?: number;
  /** retries of a verification after a network error or a 502/503/504, within timeoutMs; default 1. */
  retries?: number;
  /**
   * cacheTtlMs bounds how long a VALID answer for a key without rate limits
   * or quota is reused (never past the key's expiry): a key revoked in
   * keyplane keeps working here for at most this long. Default 10 000; 0 turns the cache off.
   */
  cacheTtlMs?: number;
  /** cacheSize bounds the cached answers; default 10 000. */
  cacheSize?: number;
  /** keyHeader is the header the key is read from first (case-insensitive); default "x-api-key". Then `Authorization: Bearer <key>`. */
  keyHeader?: string;
  /** failOpen lets requests through, without an identity, when keyplane cannot answer; by default they get 503 (fail closed). */
  failOpen?: boolean;
  /** usage: false reports nothing; otherwise the outcomes of requests keyplane verified go to POST /v1/usage in batches (see UsageBatcher). */
  usage?: false | UsageBatcherOptions;
  /** logger receives warnings (keyplane unreachable, usage dropped); default console. Keys are never logged. */
  logger?: Logger;
  /** now is the clock, in ms; default Date.now. */
  now?: () => number;
}

/** Identity is the key an admitted request carries: keyplane's verify answer, snake_case as on the wire. */
export interface Identity {
  key_id: string;
  account_id: string;
  name: string;
  environment: string;
  scopes: string[];
  metadata: Record<string, unknown>;
  expires_at?: string;
}

export interface CheckInput {
  /** key is the API key the client sent; empty or absent answers 401 missing_key. */
  key: string | undefined | null;
  /** scope the request needs; none when absent. */
  scope?: string | undefined;
  /** ip is the client's address, checked against the key's allowed ranges. */
  ip?: string | undefined;
  /** endpoint names the request for usage, e.g. "GET /things/:id" (a route, not a raw path); a function is called only when keyplane is asked. */
  endpoint?: string | (() => string) | undefined;
  /** cost charged against rate limits and quota; default 1. */
  cost?: number | undefined;
}

/** Admitted: go on. Call `done(status)` when the response is sent, for usage. */
export interface Admitted {
  ok: true;
  /** identity is the key's; null only when keyplane could not answer and failOpen let the request through. */
  identity: Identity | null;
  /** headers to put on the response: the RateLimit fields when keyplane answered for a key with limits. */
  headers: Record<string, string>;
  /** cached is true when the cache answered (keyplane did not see this request). */
  cached: boolean;
  /** done reports the response's status and the handler's latency (since the admission) for usage. */
  done(status: number): void;
}

/** Refused: answer `status` with `problem` (application/problem+json) and `headers`. */
export interface Refused {
  ok: false;
  status: 401 | 403 | 429 | 503;
  /** code is the problem's: missing_key, not_found, revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded, unavailable. */
  code: string;
  problem: ProblemDetails;
  /** headers include Content-Type, and WWW-Authenticate, Retry-After and the RateLimit fields where they apply. */
  headers: Record<string, string>;
  /** response builds the Fetch API Response. */
  response(): Response;
}

export type Outcome = Admitted | Refused;

/** RequestLike is what verifyRequest reads: a Fetch API Request, or anything with headers (Node's IncomingMessage). */
export interface RequestLike {
  headers: Headers | Record<string, string | string[] | undefined>;
  method?: string;
}

export const statusOfRefusal: Record<Exclude<VerifyCode, "VALID">, 401 | 403 | 429> = {
  NOT_FOUND: 401,
  REVOKED: 401,
  EXPIRED: 401,
  DISABLED: 401,
  FORBIDDEN: 403,
  INSUFFICIENT_SCOPE: 403,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
};

const refusalDetail: Record<string, string> = {
  NOT_FOUND: "the API key is not valid",
  REVOKED: "the API key has been revoked",
  EXPIRED: "the API key has expired",
  DISABLED: "the API key is disabled",
  FORBIDDEN: "the API key may not be used from this address",
  INSUFFICIENT_SCOPE: "the API key lacks the scope ",
  RATE_LIMITED: "rate limit exceeded; see Retry-After",
  QUOTA_EXCEEDED: "quota exceeded; see Retry-After",
};

const statusText: Record<number, string> = { 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable" };

/** maxEndpoint is the longest endpoint name keyplane's usage keeps (bytes); a longer one would be refused. */
const maxEndpoint = 200;
/** maxKey: keyplane refuses longer keys itself; no key is this long. */
const maxKey = 256;

interface CacheEntry {
  identity: Identity;
  expires: number;
}

/**
 * Guard verifies requests' API keys with keyplane, with a small cache, and
 * reports their outcomes. One Guard per process (per keyplane): the
 * framework adapters (`@keyplane/node/hono`, `@keyplane/node/express`) take it.
 */
export class Guard {
  readonly client: KeyplaneClient;
  private readonly ttl: number;
  private readonly size: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly keyHeader: string;
  private readonly failOpen: boolean;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly batcher: UsageBatcher | undefined;
  private lastWarn = 0;
  private counts = { verified: 0, cacheHits: 0, unavailable: 0 };

  constructor(opts: GuardOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    if (opts.client) this.client = opts.client;
    else {
      if (!opts.baseUrl || !opts.token) throw new TypeError("keyplane: Guard needs baseUrl and token (or a client)");
      this.client = new KeyplaneClient({ baseUrl: opts.baseUrl, token: opts.token, timeoutMs: this.timeoutMs, retries: opts.retries ?? 1, backoffMs: 50 });
    }
    this.ttl = Math.max(0, opts.cacheTtlMs ?? 10_000);
    this.size = Math.max(1, opts.cacheSize ?? 10_000);
    this.keyHeader = (opts.keyHeader ?? "x-api-key").toLowerCase();
    this.failOpen = opts.failOpen ?? false;
    this.log = opts.logger ?? console;
    this.now = opts.now ?? Date.now;
    if (opts.usage !== false) this.batcher = new UsageBatcher(this.client, { logger: this.log, ...opts.usage });
  }

  /** keyFrom reads the key from the configured header, else Authorization: Bearer. */
  keyFrom(headers: RequestLike["headers"]): string | undefined {
    const get = (name: string): string | undefined => {
      if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
      const v = (headers as Record<string, string | string[] | undefined>)[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const direct = get(this.keyHeader)?.trim();
    if (direct) return direct;
    const auth = get("authorization");
    if (auth && auth.length > 7 && auth.slice(0, 7).toLowerCase() === "bearer ") return auth.slice(7).trim() || undefined;
    return undefined;
  }

  /**
   * verifyRequest checks a request's key: framework-free. `req` is a Fetch
   * API Request or anything with `headers`; scope, ip, endpoint and cost
   * come in `opts` (the endpoint defaults to the method).
   */
  verifyRequest(req: RequestLike, opts: Omit<CheckInput, "key"> = {}): Promise<Outcome> {
    return this.check({ ...opts, key: this.keyFrom(req.headers), endpoint: opts.endpoint ?? req.method });
  }

  /** check verifies a key already read from the request. */
  async check(input: CheckInput): Promise<Outcome> {
    const key = input.key ?? "";
    if (!key) return refusal(401, "missing_key", `no API key: send ${headerName(this.keyHeader)}: <key> or Authorization: Bearer <key>`);
    const scope = input.scope ?? "";
    const ip = normalizeIp(input.ip);
    const ck = this.ttl > 0 ? cacheKey(key, scope, ip) : "";
    if (ck) {
      const hit = this.cache.get(ck);
      if (hit) {
        if (this.now() < hit.expires) {
          this.counts.cacheHits++;
          return this.admit(hit.identity, {}, true, "");
        }
        this.cache.delete(ck);
      }
    }
    if (key.length > maxKey) return refusal(401, "not_found", refusalDetail.NOT_FOUND!);
    const endpoint = trimEndpoint(typeof input.endpoint === "function" ? input.endpoint() : input.endpoint);
    let res: VerifyResponse;
    try {
      res = await this.client.verify(
        { key, scope: scope || undefined, ip: ip || undefined, endpoint: endpoint || undefined, cost: input.cost ?? 1 },
        { timeoutMs: this.timeoutMs },
      );
      this.counts.verified++;
    } catch (err) {
      return this.unavailable(err);
    }
    if (!res.valid) {
      const status = statusOfRefusal[res.code as Exclude<VerifyCode, "VALID">] ?? 403; // a code newer than this package: refuse
      let detail = refusalDetail[res.code] ?? "the API key may not make this request";
      if (res.code === "INSUFFICIENT_SCOPE") detail += scope;
      return refusal(status, res.code.toLowerCase(), detail, rateLimitHeaders(res));
    }
    const identity: Identity = {
      key_id: res.key_id ?? "",
      account_id: res.account_id ?? "",
      name: res.name ?? "",
      environment: res.environment ?? "",
      scopes: res.scopes ?? [],
      metadata: res.metadata ?? {},
    };
    if (res.expires_at) identity.expires_at = res.expires_at;
    // Keys with rate limits or a quota are counted by keyplane on every request: never cached.
    if (ck && !res.ratelimit && !res.quota) {
      let expires = this.now() + this.ttl;
      if (res.expires_at) expires = Math.min(expires, Date.parse(res.expires_at));
      if (this.cache.size >= this.size) {
        // Drop the oldest entry: a Map iterates in insertion order.
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      this.cache.set(ck, { identity, expires });
    }
    return this.admit(identity, rateLimitHeaders(res), false, endpoint);
  }

  private admit(identity: Identity, headers: Record<string, string>, cached: boolean, endpoint: string): Admitted {
    const batcher = this.batcher;
    const start = Date.now();
    const t0 = performance.now(); // sub-millisecond: keyplane reads latency_ms 0 as "not measured"
    return {
      ok: true,
      identity,
      headers,
      cached,
      // keyplane counts a request when it verifies it; /v1/usage adds the
      // outcome of such a request. A request the cache answered was never
      // counted, so it is not reported (as keyplanemw does).
      done: (status: number) => {
        if (!batcher || cached || !identity.key_id) return;
        const ev = { key_id: identity.key_id, status, latency_ms: Math.max(0.001, performance.now() - t0), time: new Date(start).toISOString() } as {
          key_id: string;
          status: number;
          latency_ms: number;
          time: string;
          endpoint?: string;
        };
        if (endpoint) ev.endpoint = endpoint;
        batcher.report(ev);
      },
    };
  }

  private unavailable(err: unknown): Outcome {
    this.counts.unavailable++;
    const now = this.now();
    if (now - this.lastWarn >= 1000) {
      // One line a second at most: an outage must not flood the logs.
      this.lastWarn = now;
      const what = err instanceof KeyplaneApiError ? `keyplane refused the verification (${err.status} ${err.code}): check the token` : (err as Error)?.message;
      this.log.warn(`keyplane could not verify a key: ${what}${this.failOpen ? " (failOpen: let through)" : ""}`);
    }
    if (this.failOpen) return { ok: true, identity: null, headers: {}, cached: false, done: () => undefined };
    return refusal(503, "unavailable", "the API key could not be verified; try again", { "Retry-After": "1" });
  }

  /** stats counts verifications, cache hits, unavailability and usage reporting. */
  stats(): { verified: number; cacheHits: number; unavailable: number; cached: number; usage: UsageStats | undefined } {
    return { ...this.counts, cached: this.cache.size, usage: this.batcher?.stats() };
  }

  /** flushUsage sends the queued usage events now. */
  flushUsage(): Promise<void> {
    return this.batcher?.flush() ?? Promise.resolve();
  }

  /** close sends what usage is left and stops the timer. */
  async close(): Promise<void> {
    await this.batcher?.close();
  }
}

/** rateLimitHeaders mirrors keyplane's forward-auth and gateway (httpapi/ratelimit.go). */
export function rateLimitHeaders(res: VerifyResponse): Record<string, string> {
  const h: Record<string, string> = {};
  if (res.code === "RATE_LIMITED" || res.code === "QUOTA_EXCEEDED") h["Retry-After"] = String(Math.max(1, res.retry_after_seconds ?? 0));
  const rl = res.ratelimit;
  if (!rl) return h;
  const policy = JSON.stringify(rl.policy);
  h["RateLimit-Policy"] = `${policy};q=${rl.limit};w=${rl.window_seconds}`;
  h["RateLimit"] = `${policy};r=${rl.remaining};t=${rl.reset_seconds}`;
  h["X-RateLimit-Limit"] = String(rl.limit);
  h["X-RateLimit-Remaining"] = String(rl.remaining);
  h["X-RateLimit-Reset"] = String(rl.reset_seconds);
  return h;
}

function refusal(status: Refused["status"], code: string, detail: string, extra: Record<string, string> = {}): Refused {
  const problem: ProblemDetails = { type: "urn:keyplane:problem:" + code, title: statusText[status]!, status, detail, code };
  const headers: Record<string, string> = { ...extra, "Content-Type": "application/problem+json" };
  if (status === 401) headers["WWW-Authenticate"] = 'Bearer realm="api"';
  return {
    ok: false,
    status,
    code,
    problem,
    headers,
    response: () => new Response(JSON.stringify(problem), { status, headers }),
  };
}

// crypto.hash (Node.js 20.12+) hashes without a Hash object: a third of createHash's cost.
const sha256: (s: string) => string =
  typeof (nodeCrypto as { hash?: unknown }).hash === "function"
    ? (s) => (nodeCrypto as unknown as { hash(alg: string, data: string, enc: string): string }).hash("sha256", s, "base64")
    : (s) => nodeCrypto.createHash("sha256").update(s).digest("base64");

function cacheKey(key: string, scope: string, ip: string): string {
  // By the key's hash, so the cache does not keep plaintext keys.
  return sha256(key) + "\0" + scope + "\0" + ip;
}

/** normalizeIp turns an IPv4-mapped IPv6 address (::ffff:1.2.3.4) into IPv4. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return "";
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

function trimEndpoint(e: string | undefined): string {
  if (!e) return "";
  if (Buffer.byteLength(e) <= maxEndpoint) return e;
  let s = e;
  while (Buffer.byteLength(s) > maxEndpoint) s = s.slice(0, -1);
  return s;
}

function headerName(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
}
