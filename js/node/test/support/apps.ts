// Small HTTP servers on 127.0.0.1 for the tests: the Hono and Express apps
// under test, and stand-ins for a keyplane that hangs or fails.
import { serve } from "@hono/node-server";
import express from "express";
import { Hono } from "hono";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createServer as createTcpServer, type Socket } from "node:net";
import type { Guard } from "@keyplane/node";
import { keyplane as honoKeyplane, type KeyplaneEnv } from "@keyplane/node/hono";
import { keyplane as expressKeyplane } from "@keyplane/node/express";

export interface App {
  url: string;
  close(): Promise<void>;
}

/** The routes both apps serve: the same behaviour, the same answers. */
export function honoApp(guard: Guard): Promise<App> {
  const app = new Hono<KeyplaneEnv>();
  app.get("/things/:id", honoKeyplane(guard, { scope: "things:read" }), (c) =>
    c.json({ thing: c.req.param("id"), identity: c.get("keyplane") }),
  );
  app.post("/things", honoKeyplane(guard, { scope: "things:write" }), (c) => c.json({ created: true }, 201));
  app.get("/boom", honoKeyplane(guard), (c) => c.json({ error: "boom" }, 500));
  app.get("/open", (c) => c.text("open"));
  return new Promise((ok) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
      ok({ url: `http://127.0.0.1:${info.port}`, close: () => closeServer(server as Server) });
    });
  });
}

export function expressApp(guard: Guard): Promise<App> {
  const app = express();
  app.get("/things/:id", expressKeyplane(guard, { scope: "things:read" }), (req, res) => {
    res.json({ thing: req.params.id, identity: req.keyplane });
  });
  app.post("/things", expressKeyplane(guard, { scope: "things:write" }), (_req, res) => {
    res.status(201).json({ created: true });
  });
  app.get("/boom", expressKeyplane(guard), (_req, res) => {
    res.status(500).json({ error: "boom" });
  });
  app.get("/open", (_req, res) => {
    res.send("open");
  });
  return listen(createServer(app));
}

/** nodeApp serves the same routes on node:http alone, through guard.verifyRequest. */
export function nodeApp(guard: Guard): Promise<App> {
  return listen(
    createServer(async (req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      const thing = req.method === "GET" ? /^\/things\/([^/]+)$/.exec(path) : null;
      const route = thing
        ? { scope: "things:read", endpoint: "GET /things/:id" }
        : req.method === "POST" && path === "/things"
          ? { scope: "things:write", endpoint: "POST /things" }
          : req.method === "GET" && path === "/boom"
            ? { scope: undefined, endpoint: "GET /boom" }
            : undefined;
      if (!route) {
        res.writeHead(404).end();
        return;
      }
      const out = await guard.verifyRequest(req, { ...route, ip: req.socket.remoteAddress });
      if (!out.ok) {
        res.writeHead(out.status, out.headers).end(JSON.stringify(out.problem));
        return;
      }
      const [status, body] = thing
        ? [200, { thing: thing[1], identity: out.identity ?? undefined }]
        : path === "/boom"
          ? [500, { error: "boom" }]
          : [201, { created: true }];
      res.writeHead(status, { ...out.headers, "Content-Type": "application/json" }).end(JSON.stringify(body));
      out.done(status);
    }),
  );
}

export function listen(server: Server): Promise<App> {
  return new Promise((ok) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      ok({ url: `http://127.0.0.1:${port}`, close: () => closeServer(server) });
    });
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((ok) => server.close(() => ok()));
}

/** hangingServer accepts connections and never answers: a keyplane that hangs. */
export function hangingServer(): Promise<App> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
  });
  return new Promise((ok) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      ok({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** closedPort is an address where nothing listens (a port just released). */
export async function closedPort(): Promise<string> {
  const s = await hangingServer();
  await s.close();
  return s.url;
}
