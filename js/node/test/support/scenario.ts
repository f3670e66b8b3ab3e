// The middleware's behaviour, the same for every framework: each adapter's
// test file runs these against a real `keyplane serve` and its own app.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Guard, KeyplaneClient, type GuardOptions, type Key } from "@keyplane/node";
import { KeyplaneServer, sleep } from "./keyplane.js";
import { hangingServer, type App } from "./apps.js";

export type MakeApp = (guard: Guard) => Promise<App>;

/** A key of the right shape and checksum alphabet that keyplane never issued. */
const unknownKey = "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17";

interface Fixture {
  kp: KeyplaneServer;
  admin: KeyplaneClient;
  verifyToken: string;
  accountId: string;
}

async function fixture(): Promise<Fixture> {
  const kp = await KeyplaneServer.start({ args: ["--usage-flush-interval", "100ms"] });
  const admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
  const account = await admin.accounts.create({ name: "Acme", allowed_scopes: ["things:*"] });
  return { kp, admin, verifyToken: kp.createToken("verify", "api"), accountId: account.id };
}

async function newKey(f: Fixture, scopes: string[], extra: Partial<Parameters<KeyplaneClient["keys"]["create"]>[1]> = {}) {
  return f.admin.keys.create(f.accountId, { name: "k", scopes, ...extra });
}

function get(app: App, path: string, key?: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (key) headers.set("Authorization", "Bearer " + key);
  return fetch(app.url + path, { ...init, headers });
}

async function problem(res: Response) {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assert.equal(body.status, res.status);
  assert.match(body.type, /^urn:keyplane:problem:/);
  return body as { type: string; title: string; status: number; detail: string; code: string };
}

export function middlewareSuite(name: string, makeApp: MakeApp): void {
  describe(`${name} middleware against keyplane serve`, () => {
    let f: Fixture;
    let guard: Guard;
    let app: App;
    const guardOpts = (): GuardOptions => ({ baseUrl: f.kp.url, token: f.verifyToken, cacheTtlMs: 1000, timeoutMs: 2000, usage: { flushIntervalMs: 100 } });

    before(async () => {
      f = await fixture();
      guard = new Guard(guardOpts());
      app = await makeApp(guard);
    });
    after(async () => {
      await app?.close();
      await guard?.close();
      await f?.kp.cleanup();
    });

    it("admits a valid key and hands its identity to the handler", async () => {
      const k = await newKey(f, ["things:read"], { metadata: { tier: "gold" } });
      const res = await get(app, "/things/7", k.key);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.thing, "7");
      assert.equal(body.identity.key_id, k.id);
      assert.equal(body.identity.account_id, f.accountId);
      assert.deepEqual(body.identity.scopes, ["things:read"]);
      assert.deepEqual(body.identity.metadata, { tier: "gold" });
      // The key also works from X-API-Key.
      const res2 = await fetch(app.url + "/things/8", { headers: { "X-API-Key": k.key } });
      assert.equal(res2.status, 200);
    });

    it("refuses a missing key: 401 missing_key with WWW-Authenticate", async () => {
      const res = await get(app, "/things/7");
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="api"');
      const p = await problem(res);
      assert.equal(p.code, "missing_key");
      assert.equal(p.title, "Unauthorized");
    });

    it("refuses an unknown key: 401 not_found", async () => {
      const res = await get(app, "/things/7", unknownKey);
      assert.equal(res.status, 401);
      assert.equal((await problem(res)).code, "not_found");
    });

    it("refuses an under-scoped key: 403 insufficient_scope naming the scope", async () => {
      const k = await newKey(f, ["things:read"]);
      const res = await get(app, "/things", k.key, { method: "POST" });
      assert.equal(res.status, 403);
      const p = await problem(res);
      assert.equal(p.code, "insufficient_scope");
      assert.match(p.detail, /things:write/);
      const w = await newKey(f, ["things:write"]);
      assert.equal((await get(app, "/things", w.key, { method: "POST" })).status, 201);
    });

    it("refuses a revoked key: 401 revoked", async () => {
      const k = await newKey(f, ["things:read"]);
      await f.admin.keys.revoke(k.id);
      const res = await get(app, "/things/1", k.key);
      assert.equal(res.status, 401);
      assert.equal((await problem(res)).code, "revoked");
    });

    it("sees a revocation within the cache TTL", async () => {
      const k = await newKey(f, ["things:read"]);
      assert.equal((await get(app, "/things/1", k.key)).status, 200);
      const revoked = Date.now();
      await f.admin.keys.revoke(k.id);
      // Answered from the cache meanwhile: the TTL is the bound, not instant.
      const hits = guard.stats().cacheHits;
      assert.equal((await get(app, "/things/1", k.key)).status, 200);
      assert.equal(guard.stats().cacheHits, hits + 1);
      let status = 200;
      while (status === 200 && Date.now() - revoked < 3000) {
        await sleep(50);
        status = (await get(app, "/things/1", k.key)).status;
      }
      const seenAfter = Date.now() - revoked;
      assert.equal(status, 401);
      // The TTL, plus a poll interval and a request on a loaded machine.
      assert.ok(seenAfter <= 1000 + 500, `revocation seen after ${seenAfter} ms, TTL 1000 ms`);
    });

    it("passes the RateLimit headers through, as keyplane's forward-auth writes them, and 429 with Retry-After", async () => {
      const limits = { rate_limits: [{ name: "minute", limit: 3, window_seconds: 60, algorithm: "token_bucket" as const }] };
      const k = await newKey(f, ["things:read"], limits);
      const twin = await newKey(f, ["things:read"], limits); // the same policy, asked through forward-auth
      const names = ["ratelimit-policy", "ratelimit", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"];
      for (let i = 1; i <= 4; i++) {
        const res = await get(app, "/things/1", k.key);
        const fa = await fetch(f.kp.url + "/v1/forward-auth", {
          headers: { "X-Keyplane-Token": f.verifyToken, "X-Forwarded-Uri": "/things/1", "X-Forwarded-Method": "GET", "X-API-Key": twin.key },
        });
        await fa.arrayBuffer();
        assert.equal(res.status, i <= 3 ? 200 : 429, `request ${i}`);
        assert.equal(fa.status, res.status, `forward-auth, request ${i}`);
        for (const n of names) {
          const ours = res.headers.get(n);
          const theirs = fa.headers.get(n);
          if (n === "ratelimit" || n === "x-ratelimit-reset") {
            // t= and the reset count down in seconds: a second may tick between the two.
            assert.equal(ours === null, theirs === null, n);
            if (ours && theirs) assert.equal(ours.replace(/;t=\d+$/, "").replace(/^\d+$/, "n"), theirs.replace(/;t=\d+$/, "").replace(/^\d+$/, "n"), n);
          } else assert.equal(ours, theirs, `${n}, request ${i}`);
        }
        assert.equal(res.headers.get("ratelimit-policy"), '"minute";q=3;w=60');
        assert.match(res.headers.get("ratelimit") ?? "", new RegExp(`^"minute";r=${Math.max(0, 3 - i)};t=\\d+$`));
        if (i === 4) {
          assert.ok(Number(res.headers.get("retry-after")) >= 1);
          assert.equal((await problem(res)).code, "rate_limited");
        } else {
          assert.equal(res.headers.get("retry-after"), null);
          await res.arrayBuffer();
        }
      }
      // A key with limits is never answered from the cache: keyplane counts each request.
      const s = guard.stats();
      assert.equal((await get(app, "/things/1", k.key)).status, 429);
      assert.equal(guard.stats().cacheHits, s.cacheHits);
    });

    it("reports status and latency to POST /v1/usage, which GET /v1/keys/{id}/usage then shows", async () => {
      const k = await newKey(f, ["things:read"]);
      const uncached = new Guard({ ...guardOpts(), cacheTtlMs: 0 });
      const app2 = await makeApp(uncached);
      try {
        for (let i = 0; i < 3; i++) assert.equal((await get(app2, "/things/1", k.key)).status, 200);
        assert.equal((await get(app2, "/boom", k.key)).status, 500);
        await uncached.flushUsage();
        assert.deepEqual(uncached.stats().usage, { sent: 4, dropped: 0, rejected: 0, pending: 0 });
      } finally {
        await app2.close();
        await uncached.close();
      }
      let report: Awaited<ReturnType<KeyplaneClient["keys"]["usage"]>> | undefined;
      for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
        report = await f.admin.keys.usage(k.id, { granularity: "minute" });
        if ((report.totals.latency_ms?.count ?? 0) >= 4) break;
      }
      assert.ok(report);
      assert.equal(report.totals.requests, 4);
      assert.equal(report.totals.errors, 1, "the 500 counts as an error");
      assert.equal(report.totals.successes, 3);
      assert.equal(report.totals.latency_ms?.count, 4);
      const endpoints = (report.top_endpoints ?? []).map((e) => e.endpoint).sort();
      assert.deepEqual(endpoints, ["GET /boom", "GET /things/:id"]);
    });

    it("fails closed with 503 when keyplane does not answer, within the timeout", async () => {
      const hang = await hangingServer();
      const g = new Guard({ baseUrl: hang.url, token: f.verifyToken, timeoutMs: 300, usage: false, logger: { warn: () => undefined } });
      const a = await makeApp(g);
      try {
        const t = Date.now();
        const res = await get(a, "/things/1", unknownKey);
        const took = Date.now() - t;
        assert.equal(res.status, 503);
        assert.equal(res.headers.get("retry-after"), "1");
        assert.equal((await problem(res)).code, "unavailable");
        assert.ok(took >= 250 && took < 1500, `answered after ${took} ms, timeout 300 ms`);
      } finally {
        await a.close();
        await hang.close();
      }
    });

    it("answers 503 when keyplane refuses the guard's token, and says so in the log", async () => {
      const warnings: string[] = [];
      const g = new Guard({ baseUrl: f.kp.url, token: "kpt_" + "0".repeat(36), usage: false, logger: { warn: (m) => warnings.push(m) } });
      const a = await makeApp(g);
      try {
        const res = await get(a, "/things/1", unknownKey);
        assert.equal(res.status, 503);
        assert.equal((await problem(res)).code, "unavailable");
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, /401 unauthorized.*check the token/);
      } finally {
        await a.close();
      }
    });

    it("fails open when configured: the request goes on without an identity", async () => {
      const hang = await hangingServer();
      const g = new Guard({ baseUrl: hang.url, token: f.verifyToken, timeoutMs: 200, failOpen: true, usage: false, logger: { warn: () => undefined } });
      const a = await makeApp(g);
      try {
        const res = await get(a, "/things/1", unknownKey);
        assert.equal(res.status, 200);
        assert.equal((await res.json()).identity, undefined);
      } finally {
        await a.close();
        await hang.close();
      }
    });

    it("answers 503 once keyplane is stopped, without hanging, and keeps serving cached keys", async () => {
      const k = await newKey(f, ["things:read"]);
      const fresh = await newKey(f, ["things:read"]);
      const warnings: string[] = [];
      const g = new Guard({ ...guardOpts(), cacheTtlMs: 60_000, timeoutMs: 1500, logger: { warn: (m) => warnings.push(m) } });
      const a = await makeApp(g);
      try {
        assert.equal((await get(a, "/things/1", k.key)).status, 200);
        await f.kp.stop();
        const t = Date.now();
        const res = await get(a, "/things/1", fresh.key);
        const took = Date.now() - t;
        assert.equal(res.status, 503);
        assert.equal((await problem(res)).code, "unavailable");
        assert.ok(took < 1500, `answered after ${took} ms, timeout 1500 ms`);
        assert.equal((await get(a, "/things/1", k.key)).status, 200, "a cached key still works");
        // One line for the outage however many requests (a usage flush may fail too).
        assert.equal(warnings.filter((w) => w.startsWith("keyplane could not verify")).length, 1, warnings.join("\n"));
        assert.ok(!warnings.some((w) => w.includes(fresh.key) || w.includes(k.key)), "no key in the logs");
      } finally {
        await a.close();
        await g.close();
      }
    });
  });
}

export type { Key };
