// The admin client and verify() against a real `keyplane serve`, and its
// retries, timeouts and typed errors against loopback servers that fail.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import {
  KeyplaneApiError,
  KeyplaneClient,
  KeyplaneConflictError,
  KeyplaneForbiddenError,
  KeyplaneNotFoundError,
  KeyplaneUnauthorizedError,
  KeyplaneUnavailableError,
  KeyplaneValidationError,
  UsageBatcher,
} from "@keyplane/node";
import { closedPort, hangingServer, listen } from "./support/apps.js";
import { KeyplaneServer, sleep } from "./support/keyplane.js";

describe("KeyplaneClient against keyplane serve", () => {
  let kp: KeyplaneServer;
  let admin: KeyplaneClient;
  before(async () => {
    kp = await KeyplaneServer.start({ args: ["--usage-flush-interval", "100ms"] });
    admin = new KeyplaneClient({ baseUrl: kp.url + "/", token: kp.token });
  });
  after(() => kp?.cleanup());

  it("manages plans, accounts and keys, and verifies keys", async () => {
    assert.deepEqual(await admin.healthz(), { status: "ok" });
    const plan = await admin.plans.create({ name: "gold", max_keys: 5, allowed_scopes: ["things:*"] });
    assert.equal(plan.name, "gold");
    assert.equal(plan.quota, null, "no quota: null, which the document does not say");
    assert.equal((await admin.plans.update("gold", { max_keys: 6 })).max_keys, 6);
    assert.equal((await admin.plans.get("gold")).max_keys, 6);
    assert.ok((await admin.plans.list()).data.some((p) => p.name === "gold"));

    const acc = await admin.accounts.create({ name: "Acme", plan: "gold", allowed_scopes: ["things:*"] });
    assert.match(acc.id, /^acc_/);
    assert.equal((await admin.accounts.update(acc.id, { name: "Acme Corp" })).name, "Acme Corp");
    assert.equal((await admin.accounts.get(acc.id)).name, "Acme Corp");
    const ids: string[] = [];
    for await (const a of admin.accounts.all()) ids.push(a.id);
    assert.ok(ids.includes(acc.id));

    const k = await admin.keys.create(acc.id, { name: "prod", scopes: ["things:read"], metadata: { tier: "gold" } });
    assert.match(k.key, /^kp_live_[0-9A-Za-z]{36}$/);
    assert.equal(k.quota, null);
    const got = await admin.keys.get(k.id);
    assert.equal(got.key, undefined, "the plaintext is shown once");
    assert.equal((await admin.keys.update(k.id, { name: "production" })).name, "production");

    const ok = await admin.verify({ key: k.key, scope: "things:read", ip: "203.0.113.7" });
    assert.equal(ok.valid, true);
    assert.equal(ok.code, "VALID");
    assert.equal(ok.key_id, k.id);
    assert.deepEqual(ok.metadata, { tier: "gold" });
    assert.equal((await admin.verify({ key: k.key, scope: "things:write" })).code, "INSUFFICIENT_SCOPE");

    const rolled = await admin.keys.roll(k.id, { overlap_seconds: 60 });
    assert.match(rolled.key.key, /^kp_live_/);
    assert.equal(rolled.previous.id, k.id);
    assert.equal((await admin.keys.get(k.id)).status, "rolling");
    assert.equal((await admin.keys.revoke(rolled.key.id)).status, "revoked");
    assert.equal((await admin.verify({ key: rolled.key.key })).code, "REVOKED");
    const revoked = await admin.keys.list(acc.id, { status: "revoked" });
    assert.deepEqual(revoked.data.map((x) => x.id), [rolled.key.id]);
    const all: string[] = [];
    for await (const x of admin.keys.all(acc.id)) all.push(x.id);
    assert.deepEqual(all.sort(), [k.id, rolled.key.id].sort());

    // Quota: none → 404; with one, its state.
    await assert.rejects(admin.keys.quota(k.id), KeyplaneNotFoundError);
    const q = await admin.keys.create(acc.id, { name: "metered", quota: { limit: 10, period: "day" } });
    assert.equal((await admin.verify({ key: q.key, cost: 3 })).quota?.remaining, 7);
    assert.equal((await admin.keys.quota(q.id)).used, 3);
    assert.equal((await admin.keys.resetQuota(q.id)).used, 0);

    // Audit: the changes above, newest first, filtered by key.
    const events = await admin.audit.list({ key_id: rolled.key.id });
    assert.deepEqual(events.data.map((e) => e.type).slice(0, 1), ["key.revoked"]);
    const types = new Set<string>();
    for await (const e of admin.audit.all({ account_id: acc.id })) types.add(e.type);
    for (const t of ["key.created", "key.rolled", "key.revoked"]) assert.ok(types.has(t), `${t} in ${[...types]}`);
    assert.ok((await admin.accounts.audit(acc.id, { type: "key.created" })).data.length >= 2);

    // Members and invites.
    const inv = await admin.accounts.invite(acc.id, { email: "dev@example.com", role: "developer" });
    assert.match(inv.invite_url ?? "", /^http/);
    assert.equal((await admin.accounts.invites(acc.id)).data?.length, 1);
    await admin.members.cancelInvite(inv.id);
    assert.equal((await admin.accounts.invites(acc.id)).data?.length ?? 0, 0);
    assert.deepEqual((await admin.accounts.members(acc.id)).data, []);
  });

  it("reports usage and reads it back, as JSON and CSV", async () => {
    const acc = await admin.accounts.create({ name: "Usage" });
    const k = await admin.keys.create(acc.id, { name: "u" });
    for (let i = 0; i < 2; i++) await admin.verify({ key: k.key, endpoint: "GET /x" });
    assert.deepEqual(await admin.usage.report([{ key_id: k.id, endpoint: "GET /x", status: 503, latency_ms: 12.5 }]), { accepted: 1 });
    let report = await admin.keys.usage(k.id, { granularity: "minute" });
    for (const deadline = Date.now() + 5000; report.totals.errors < 1 && Date.now() < deadline; await sleep(100)) {
      report = await admin.keys.usage(k.id, { granularity: "minute" });
    }
    assert.equal(report.totals.requests, 2);
    assert.equal(report.totals.errors, 1);
    assert.equal((await admin.accounts.usage(acc.id, { granularity: "minute" })).totals.requests, 2);
    const csv = await admin.keys.usageCsv(k.id, { granularity: "hour" });
    assert.match(csv.split("\n")[0]!, /^subject_id,granularity,bucket_start,requests/);
    // A refused batch is a validation error naming the event.
    await assert.rejects(admin.usage.report([{ key_id: "key_nope", status: 200 }]), (err: unknown) => {
      assert.ok(err instanceof KeyplaneValidationError);
      assert.equal(err.status, 400);
      assert.equal(err.code, "invalid");
      assert.ok(err.errors.some((e) => e.field.startsWith("events[0]")), JSON.stringify(err.errors));
      return true;
    });
  });

  it("turns problem details into typed errors", async () => {
    await assert.rejects(admin.keys.get("key_nope"), (err: unknown) => {
      assert.ok(err instanceof KeyplaneNotFoundError && err instanceof KeyplaneApiError);
      assert.equal(err.status, 404);
      assert.equal(err.code, "not_found");
      assert.equal(err.type, "urn:keyplane:problem:not_found");
      assert.ok(err.requestId);
      assert.match(err.message, /GET \/v1\/keys\/key_nope: 404 not_found/);
      return true;
    });
    await assert.rejects(admin.accounts.create({ name: "" }), (err: unknown) => {
      assert.ok(err instanceof KeyplaneValidationError);
      assert.deepEqual(err.errors.map((e) => e.field), ["name"]);
      return true;
    });
    await assert.rejects(new KeyplaneClient({ baseUrl: kp.url, token: "kpt_" + "0".repeat(36) }).accounts.list(), KeyplaneUnauthorizedError);
    const verifyOnly = new KeyplaneClient({ baseUrl: kp.url, token: kp.createToken("verify") });
    await assert.rejects(verifyOnly.accounts.list(), KeyplaneForbiddenError);
    assert.equal((await verifyOnly.verify({ key: "kp_live_nope" })).code, "NOT_FOUND");
    const acc = await admin.accounts.create({ name: "Conflict" });
    const k = await admin.keys.create(acc.id, { name: "c" });
    await admin.keys.revoke(k.id);
    await assert.rejects(admin.keys.update(k.id, { name: "again" }), KeyplaneConflictError);
  });
});

describe("KeyplaneClient retries and timeouts", () => {
  it("retries GETs and verify on 503 with backoff, but sends a change once", async () => {
    let hits = 0;
    const flaky = await listen(
      createServer((req, res) => {
        hits++;
        if (hits % 3 !== 0) {
          res.writeHead(503, { "Content-Type": "application/problem+json" });
          res.end(JSON.stringify({ type: "urn:keyplane:problem:unavailable", title: "Service Unavailable", status: 503, detail: "database down", code: "unavailable" }));
          return;
        }
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(req.url === "/v1/verify" ? '{"valid":false,"code":"NOT_FOUND"}' : '{"status":"ok"}');
      }),
    );
    try {
      const c = new KeyplaneClient({ baseUrl: flaky.url, token: "t", backoffMs: 10 });
      assert.deepEqual(await c.healthz(), { status: "ok" });
      assert.equal(hits, 3);
      hits = 0;
      assert.equal((await c.verify({ key: "k" })).code, "NOT_FOUND");
      assert.equal(hits, 3);
      hits = 0;
      await assert.rejects(c.accounts.create({ name: "x" }), (err: unknown) => {
        assert.ok(err instanceof KeyplaneUnavailableError);
        assert.equal(err.status, 503);
        assert.equal(err.attempts, 1);
        assert.equal(err.problem?.detail, "database down");
        return true;
      });
      assert.equal(hits, 1, "a POST is not retried");
      hits = 0;
      const once = new KeyplaneClient({ baseUrl: flaky.url, token: "t", retries: 0 });
      await assert.rejects(once.healthz(), KeyplaneUnavailableError);
      assert.equal(hits, 1);
    } finally {
      await flaky.close();
    }
  });

  it("gives up at the timeout, retries included", async () => {
    const hang = await hangingServer();
    try {
      const c = new KeyplaneClient({ baseUrl: hang.url, token: "t", timeoutMs: 250 });
      const t = Date.now();
      await assert.rejects(c.accounts.get("acc_x"), (err: unknown) => {
        assert.ok(err instanceof KeyplaneUnavailableError);
        assert.equal(err.timedOut, true);
        assert.match(err.message, /did not answer within 250 ms/);
        return true;
      });
      const took = Date.now() - t;
      assert.ok(took >= 240 && took < 1500, `gave up after ${took} ms`);
      // A caller's signal cancels too.
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("cancelled")), 50);
      await assert.rejects(c.healthz({ signal: ac.signal, timeoutMs: 5000 }), /cancelled/);
    } finally {
      await hang.close();
    }
  });

  it("retries a refused connection, then reports keyplane unreachable", async () => {
    const c = new KeyplaneClient({ baseUrl: await closedPort(), token: "t", backoffMs: 5 });
    await assert.rejects(c.healthz(), (err: unknown) => {
      assert.ok(err instanceof KeyplaneUnavailableError);
      assert.equal(err.attempts, 3);
      assert.equal(err.timedOut, false);
      assert.match(err.message, /could not be reached/);
      return true;
    });
  });
});

describe("UsageBatcher", () => {
  it("keeps at most maxPending events while keyplane is down, and counts the ones it drops", async () => {
    const warnings: string[] = [];
    const c = new KeyplaneClient({ baseUrl: await closedPort(), token: "t" });
    const b = new UsageBatcher(c, { maxPending: 3, flushIntervalMs: 60_000, logger: { warn: (m) => warnings.push(m) } });
    for (let i = 0; i < 5; i++) b.report({ key_id: "key_" + i, status: 200, latency_ms: 1 });
    assert.deepEqual(b.stats(), { sent: 0, dropped: 2, rejected: 0, pending: 3 });
    await b.flush(); // fails: the events stay queued
    assert.deepEqual(b.stats(), { sent: 0, dropped: 2, rejected: 0, pending: 3 });
    b.report({ key_id: "key_5", status: 200 });
    assert.equal(b.stats().dropped, 3);
    assert.ok(warnings.some((w) => /2 usage events dropped/.test(w)), warnings.join("\n"));
    assert.ok(warnings.some((w) => /usage report failed, 3 events kept/.test(w)), warnings.join("\n"));
    await b.close();
  });
});
