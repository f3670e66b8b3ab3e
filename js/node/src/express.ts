// Express middleware: `app.get("/things/:id", keyplane(guard, { scope: "things:read" }), handler)`.
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { Guard, type GuardOptions, type Identity } from "./guard.js";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** keyplane is the identity of the request's key, set by @keyplane/node/express. */
      keyplane?: Identity;
    }
  }
}

export interface ExpressOptions {
  /** scope the route needs: a string, or a function of the request (undefined: none). */
  scope?: string | ((req: Request) => string | undefined);
  /** cost charged against rate limits and quota; default 1. */
  cost?: number | ((req: Request) => number);
  /** clientIp returns the client's address; default req.ip (which follows Express's "trust proxy" setting). */
  clientIp?: (req: Request) => string | undefined;
  /** endpoint names the request for usage; default "METHOD route" when the middleware is on a route, else the method. */
  endpoint?: (req: Request) => string;
}

/**
 * keyplane returns Express middleware that admits a request whose key
 * keyplane finds valid (with the scope), sets its identity as
 * `req.keyplane`, and answers the others with problem details: 401, 403,
 * 429 (Retry-After and the RateLimit fields), 503 when keyplane cannot answer.
 * Pass one Guard to every route: it holds the cache and the usage queue.
 */
export function keyplane(guard: Guard | GuardOptions, opts: ExpressOptions = {}): RequestHandler {
  const g = guard instanceof Guard ? guard : new Guard(guard);
  return (req: Request, res: Response, next: NextFunction) => {
    const scope = typeof opts.scope === "function" ? opts.scope(req) : opts.scope;
    const cost = typeof opts.cost === "function" ? opts.cost(req) : opts.cost;
    const ip = opts.clientIp ? opts.clientIp(req) : (req.ip ?? req.socket.remoteAddress);
    const endpoint = opts.endpoint ? opts.endpoint(req) : routeOf(req);
    g.check({ key: g.keyFrom(req.headers), scope, ip, endpoint, cost }).then(
      (out) => {
        res.set(out.headers);
        if (!out.ok) {
          res.status(out.status).end(JSON.stringify(out.problem));
          return;
        }
        if (out.identity) req.keyplane = out.identity;
        res.once("finish", () => out.done(res.statusCode));
        next();
      },
      next, // check does not throw; should it, Express's error handling takes it
    );
  };
}

function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === "string" ? `${req.method} ${req.baseUrl}${path}` : req.method;
}

export { Guard };
export type { GuardOptions, Identity };
