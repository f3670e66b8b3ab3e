// The one place that talks HTTP to keyplane: deadlines, retries with
// backoff for idempotent calls, and problem details turned into typed errors.
import { apiError, KeyplaneUnavailableError, type ProblemDetails } from "./errors.js";

export interface TransportOptions {
  /** baseUrl is keyplane's, e.g. "http://127.0.0.1:8080". */
  baseUrl: string;
  /** token is an operator token: role admin for the admin API, role verify is enough for verify and usage reports. */
  token: string;
  /**
   * timeoutMs bounds a whole call, retries and backoff included: a call
   * never takes longer. Default 10 000.
   */
  timeoutMs?: number;
  /** retries is how many times an idempotent call (GET, verify) is tried again after a network error or a 502/503/504, within timeoutMs. Default 2. */
  retries?: number;
  /** backoffMs is the first retry's delay, doubled each time, with jitter; default 100. */
  backoffMs?: number;
  /** fetch replaces the global fetch (for instrumentation). */
  fetch?: typeof fetch;
  /** userAgent is sent as User-Agent. */
  userAgent?: string;
}

export interface CallOptions {
  /** signal cancels the call. */
  signal?: AbortSignal;
  /** timeoutMs overrides the client's for this call. */
  timeoutMs?: number;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

interface Request {
  method: string;
  path: string;
  query?: Query | undefined;
  body?: unknown;
  /** idempotent calls are retried; others are sent once. */
  idempotent: boolean;
  accept?: string;
}

const retryStatus = new Set([502, 503, 504]);

export class Transport {
  readonly baseUrl: string;
  private readonly auth: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly fetch: typeof fetch;
  private readonly userAgent: string;

  constructor(opts: TransportOptions) {
    if (!opts.baseUrl) throw new TypeError("keyplane: baseUrl is required");
    if (!opts.token) throw new TypeError("keyplane: token is required");
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.auth = "Bearer " + opts.token;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = Math.max(0, opts.retries ?? 2);
    this.backoffMs = opts.backoffMs ?? 100;
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.userAgent = opts.userAgent ?? "keyplane-node/0.1";
  }

  /** json sends a request and returns the decoded JSON answer (undefined for 204). */
  async json<T>(req: Request, opts: CallOptions = {}): Promise<T> {
    const res = await this.send(req, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** text sends a request and returns the answer's text (CSV). */
  async text(req: Request, opts: CallOptions = {}): Promise<string> {
    return (await this.send(req, opts)).text();
  }

  private url(path: string, query?: Query): string {
    let url = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
      const s = q.toString();
      if (s) url += "?" + s;
    }
    return url;
  }

  private async send(req: Request, opts: CallOptions): Promise<Response> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = { Authorization: this.auth, "User-Agent": this.userAgent, Accept: req.accept ?? "application/json" };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["Content-Type"] = "application/json";
    }
    const url = this.url(req.path, req.query);
    const tries = req.idempotent ? this.retries + 1 : 1;
    let last: { cause?: unknown; status?: number; problem?: ProblemDetails } = {};
    let attempt = 0;
    for (; attempt < tries; attempt++) {
      if (attempt > 0) {
        // Exponential backoff with full jitter, never past the deadline.
        const wait = Math.random() * this.backoffMs * 2 ** (attempt - 1);
        if (Date.now() + wait >= deadline) break;
        await sleep(wait, signal).catch(() => undefined);
        if (signal.aborted) break;
      }
      let res: Response;
      try {
        res = await this.fetch(url, { method: req.method, headers, body, signal });
      } catch (err) {
        last = { cause: err };
        if (signal.aborted) break;
        continue;
      }
      if (res.ok) return res;
      const requestId = res.headers.get("x-request-id") ?? undefined;
      const problem = await readProblem(res);
      if (retryStatus.has(res.status)) {
        last = { status: res.status, problem, cause: new Error(`${res.status} ${problem.detail ?? problem.title}`) };
        continue;
      }
      throw apiError(problem, req.method, req.path, requestId);
    }
    const timedOut = timeout.aborted || Date.now() >= deadline;
    if (opts.signal?.aborted) throw opts.signal.reason;
    const why = last.status
      ? `answered ${last.status}${last.problem?.detail ? ": " + last.problem.detail : ""}`
      : timedOut
        ? `did not answer within ${timeoutMs} ms`
        : `could not be reached: ${describe(last.cause)}`;
    throw new KeyplaneUnavailableError(`${req.method} ${req.path}: keyplane ${why}`, {
      cause: last.cause,
      status: last.status,
      problem: last.problem,
      attempts: Math.max(1, attempt),
      timedOut,
    });
  }
}

/** readProblem reads a problem details body, or makes one from the status. */
async function readProblem(res: Response): Promise<ProblemDetails> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // the body was cut off: the status still says what happened
  }
  try {
    const p = JSON.parse(text);
    if (p && typeof p === "object" && typeof p.status === "number") {
      return { type: String(p.type ?? "about:blank"), title: String(p.title ?? res.statusText), status: p.status, detail: p.detail, code: String(p.code ?? ""), errors: p.errors };
    }
  } catch {
    // not JSON
  }
  return { type: "about:blank", title: res.statusText, status: res.status, detail: text.slice(0, 200) || undefined, code: "" } as ProblemDetails;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = cause && typeof cause === "object" && "code" in cause ? ` (${String((cause as { code: unknown }).code)})` : "";
    return err.message + code;
  }
  return String(err);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((ok, fail) => {
    if (signal?.aborted) return fail(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      ok();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      fail(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
