// The two Hono apps the benchmark compares, in one process: the same route,
// bare, behind a middleware that does nothing, and behind keyplane's
// middleware. Prints {bare, noop, guarded} ports.
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { Guard } from "@keyplane/node";
import { keyplane } from "@keyplane/node/hono";

const handler = (c) => c.json({ thing: c.req.param("id") });
const bare = new Hono();
bare.get("/things/:id", handler);

// The cost of any middleware in Hono (a route with two handlers is composed).
const noop = new Hono();
noop.get("/things/:id", async (_c, next) => { await next(); }, handler);

const guard = new Guard({ baseUrl: process.env.KEYPLANE_URL, token: process.env.KEYPLANE_TOKEN, cacheTtlMs: 600_000 });
const guarded = new Hono();
guarded.get("/things/:id", keyplane(guard, { scope: "things:read" }), handler);

const listen = (app) => new Promise((ok) => serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => ok(info.port)));
const ports = { bare: await listen(bare), noop: await listen(noop), guarded: await listen(guarded) };
process.stdout.write(JSON.stringify(ports) + "\n");
// The benchmark asks for this process's CPU time around each load, over IPC.
process.on("message", (m) => m === "cpu" && process.send(process.cpuUsage()));
process.on("SIGTERM", async () => {
  console.error(JSON.stringify({ guardStats: guard.stats() }));
  await guard.close();
  process.exit(0);
});
