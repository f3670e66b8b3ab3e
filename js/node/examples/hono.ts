import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { Guard } from "@keyplane/node";
import { keyplane, type KeyplaneEnv } from "@keyplane/node/hono";

const guard = new Guard({ baseUrl: process.env.KEYPLANE_URL ?? "http://127.0.0.1:8080", token: process.env.KEYPLANE_TOKEN! });
const app = new Hono<KeyplaneEnv>();
app.get("/things/:id", keyplane(guard, { scope: "things:read" }), (c) =>
  c.json({ thing: c.req.param("id"), account: c.get("keyplane").account_id }));
serve({ fetch: app.fetch, hostname: "127.0.0.1", port: Number(process.env.PORT ?? 9000) });
