// Hono middleware: `app.get("/things/:id", keyplane(guard, { scope: "things:read" }), handler)`.
import type { Context, MiddlewareHandler } from "hono";
import { Guard, type GuardOptions, type Identity } from "./guard.js";

/** KeyplaneEnv types `c.get("keyplane")`: `new Hono<KeyplaneEnv>()`. */
export type KeyplaneEnv = { Variables: { keyplane: Identity } };

export interface HonoOptions {
  /** scope the route needs: a string, or a function of the context (undefined: none). */
  scope?: string | ((c: Context) => string | undefined);
  /** cost charged against rate limits and quota; default 1. */
  cost?: number | ((c: Context) => number);
  /** clientIp returns the client's address; default the socket's (with @hono/node-server). Behind a proxy, return the one it reports. */
  clientIp?: (c: Context) => string | undefined;
  /** endpoint names the request for usage; default "METHOD route" (e.g. "GET /things/:id"). */
  endpoint?: (c: Context) => string;
}

/**
 * keyplane returns Hono middleware that admits a request whose key keyplane
 * finds valid (with the scope), sets its identity as `c.get("keyplane")`,
 * and answers the others with problem details: 401, 403, 429 (Retry-After
 * and the RateLimit fields), 503 when keyplane cannot answer.
 * Pass one Guard to every route: it holds the cache and the usage queue.
 */
export function keyplane(guard: Guard | GuardOptions, opts: HonoOptions = {}): MiddlewareHandler<KeyplaneEnv> {
  const g = guard instanceof Guard ? guard : new Guard(guard);
  return async (c, next) => {
    const scope = typeof opts.scope === "function" ? opts.scope(c) : opts.scope;
    const cost = typeof opts.cost === "function" ? opts.cost(c) : opts.cost;
    const incoming = (c.env as NodeEnv | undefined)?.incoming;
    const ip = opts.clientIp ? opts.clientIp(c) : incoming?.socket?.remoteAddress;
    // Named only when keyplane is asked (a cache hit does not need it).
    const endpoint = opts.endpoint ? () => opts.endpoint!(c) : () => `${c.req.method} ${c.req.routePath}`;
    // Under @hono/node-server, Node's own headers: reading c.req.raw.headers
    // would build a whole Fetch Request for each request.
    const headers = incoming?.headers ?? c.req.raw.headers;
    const out = await g.check({ key: g.keyFrom(headers), scope, ip, endpoint, cost });
    if (!out.ok) return out.response();
    if (out.identity) c.set("keyplane", out.identity);
    for (const [k, v] of Object.entries(out.headers)) c.header(k, v);
    await next();
    out.done(c.res.status);
  };
}

/** NodeEnv is what @hono/node-server puts in c.env: Node's request. */
interface NodeEnv {
  incoming?: { headers?: Record<string, string | string[] | undefined>; socket?: { remoteAddress?: string } };
}

export { Guard };
export type { GuardOptions, Identity };
