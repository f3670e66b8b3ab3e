// The client's webhooks and events groups against a real `keyplane serve`
// delivering to a receiver on 127.0.0.1 (hence --webhooks-allow-private):
// every delivery is checked with the package's own verifier and the secret
// the client got from create or rotateSecret.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  KeyplaneClient,
  KeyplaneConflictError,
  KeyplaneNotFoundError,
  KeyplaneValidationError,
  type WebhookEndpointWithSecret,
  type WebhookMessage,
} from "@keyplane/node";
import { Webhook, WebhookVerificationError } from "@keyplane/node/webhooks";
import { listen, type App } from "./support/apps.js";
import { KeyplaneServer, sleep } from "./support/keyplane.js";

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/** Receiver records every delivery; `status` decides each answer. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  status: (d: Delivery) => number = () => 204;
  private app!: App;

  static async start(): Promise<Receiver> {
    const r = new Receiver();
    r.app = await listen(
      createServer((req, res) => {
        let body = "";
        req.setEncoding("utf8").on("data", (s: string) => (body += s));
        req.on("end", () => {
          let parsed: { type?: string; data?: Record<string, unknown> } = {};
          try {
            parsed = JSON.parse(body);
          } catch {
            // recorded as is; the test's verify says what is wrong
          }
          const d: Delivery = { path: req.url ?? "", headers: req.headers, body, id: String(req.headers["webhook-id"] ?? ""), type: parsed.type ?? "", data: parsed.data ?? {} };
          r.deliveries.push(d);
          res.writeHead(r.status(d)).end();
        });
      }),
    );
    return r;
  }

  get url(): string {
    return this.app.url;
  }

  /** wait returns the nth delivery (1-based) that matches, once it has come. */
  async wait(match: (d: Delivery) => boolean, nth = 1, timeoutMs = 5000): Promise<Delivery> {
    for (const deadline = Date.now() + timeoutMs; ; await sleep(20)) {
      const found = this.deliveries.filter(match);
      if (found.length >= nth) return found[nth - 1]!;
      if (Date.now() > deadline) throw new Error(`no delivery #${nth} within ${timeoutMs} ms; got: ${this.deliveries.map((d) => `${d.path} ${d.type} ${d.id}`).join(", ")}`);
    }
  }

  close(): Promise<void> {
    return this.app.close();
  }
}

const sigs = (d: Delivery) => String(d.headers["webhook-signature"]).split(" ");

describe("KeyplaneClient webhooks and events against keyplane serve", () => {
  let kp: KeyplaneServer;
  let rx: Receiver;
  let admin: KeyplaneClient;
  let keyDir: string;
  let accountId: string;
  let ep: WebhookEndpointWithSecret;

  /** message polls an endpoint's log until the message is there and `done` says so (the log is written just after the answer). */
  async function message(endpointId: string, id: string, done: (m: WebhookMessage) => boolean): Promise<WebhookMessage> {
    for (const deadline = Date.now() + 5000; ; await sleep(50)) {
      const m = (await admin.webhooks.messages(endpointId)).data.find((x) => x.id === id);
      if (m && done(m)) return m;
      if (Date.now() > deadline) throw new Error(`message ${id}: ${JSON.stringify(m)}`);
    }
  }

  before(async () => {
    keyDir = mkdtempSync(join(tmpdir(), "keyplane-js-secrets-"));
    const keyFile = join(keyDir, "secrets-key");
    writeFileSync(keyFile, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
    kp = await KeyplaneServer.start({
      args: ["--secrets-key-file", keyFile, "--webhooks-allow-private", "--webhook-poll-interval", "100ms", "--webhook-timeout", "2s", "--webhook-retry-schedule", "500ms"],
    });
    rx = await Receiver.start();
    admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
    accountId = (await admin.accounts.create({ name: "Acme" })).id;
    ep = await admin.webhooks.create(accountId, { url: rx.url + "/acme", events: ["invoice.paid", "key.created"], description: "Acme's receiver" });
  });
  after(async () => {
    await kp?.cleanup();
    await rx?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  it("creates an account endpoint whose secret is shown once, and lists it", async () => {
    assert.match(ep.id, /^whk_/);
    assert.match(ep.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(ep.account_id, accountId);
    assert.deepEqual(ep.events, ["invoice.paid", "key.created"]);
    assert.equal(ep.enabled, true);
    const got = await admin.webhooks.get(ep.id);
    assert.equal("secret" in got, false, "never the secret but in create's and rotate's answers");
    const { secret: _, ...shown } = ep;
    assert.deepEqual(got, shown);
    assert.deepEqual((await admin.webhooks.list(accountId)).data.map((e) => e.id), [ep.id]);
    const all: string[] = [];
    for await (const e of admin.webhooks.all(accountId)) all.push(e.id);
    assert.deepEqual(all, [ep.id]);
  });

  it("sends a test event signed with the secret from create, and logs the attempt", async () => {
    const t = await admin.webhooks.test(ep.id);
    assert.match(t.id, /^msg_/);
    assert.equal(t.type, "webhook.test");
    const d = await rx.wait((x) => x.id === t.id);
    assert.equal(d.path, "/acme");
    assert.match(String(d.headers["content-type"]), /^application\/json/);
    assert.equal(sigs(d).length, 1);
    const ev = await new Webhook(ep.secret).verify(d.body, d.headers);
    assert.equal(ev.type, "webhook.test");
    assert.equal(ev.data.endpoint_id, ep.id);
    await assert.rejects(new Webhook("whsec_" + randomBytes(32).toString("base64")).verify(d.body, d.headers), WebhookVerificationError);

    const m = await message(ep.id, t.id, (x) => x.status === "delivered");
    assert.equal(m.type, "webhook.test");
    assert.equal(m.account_id, accountId);
    assert.equal(m.payload.type, "webhook.test");
    assert.deepEqual(m.payload, JSON.parse(d.body));
    assert.equal(m.attempts.length, 1);
    assert.equal(m.attempts[0]!.status_code, 204);
    assert.ok(m.attempts[0]!.duration_ms >= 0);
  });

  it("rotates the secret: both sign during the overlap, the new one alone after overlap 0", async () => {
    const r = await admin.webhooks.rotateSecret(ep.id);
    assert.match(r.secret, /^whsec_/);
    assert.notEqual(r.secret, ep.secret);
    assert.equal(r.id, ep.id);
    assert.equal("secret" in (await admin.webhooks.get(ep.id)), false);
    const t1 = await admin.webhooks.test(ep.id);
    const d1 = await rx.wait((x) => x.id === t1.id);
    assert.equal(sigs(d1).length, 2, "one signature per active secret");
    await new Webhook(r.secret).verify(d1.body, d1.headers);
    await new Webhook(ep.secret).verify(d1.body, d1.headers);

    const r2 = await admin.webhooks.rotateSecret(ep.id, { overlap_seconds: 0 });
    const t2 = await admin.webhooks.test(ep.id);
    const d2 = await rx.wait((x) => x.id === t2.id);
    assert.equal(sigs(d2).length, 1);
    const ev = await new Webhook(r2.secret).verify(d2.body, d2.headers);
    assert.equal(ev.type, "webhook.test");
    await assert.rejects(new Webhook([ep.secret, r.secret]).verify(d2.body, d2.headers), WebhookVerificationError);
    ep = { ...ep, secret: r2.secret };
  });

  it("publishes an operator event, once per idempotency key, and retries a message", async () => {
    const data = { invoice: "in_123", amount: 4200, lines: [{ sku: "gold", qty: 1 }] };
    const pub = await admin.events.publish(accountId, { type: "invoice.paid", data, idempotency_key: "in_123-paid" });
    assert.match(pub.id, /^msg_/);
    assert.ok(!pub.duplicate);
    const d = await rx.wait((x) => x.id === pub.id);
    const ev = await new Webhook(ep.secret).verify<typeof data>(d.body, d.headers);
    assert.equal(ev.type, "invoice.paid");
    assert.deepEqual(ev.data, data);
    assert.ok(!Number.isNaN(Date.parse(ev.timestamp)));

    assert.deepEqual(await admin.events.publish(accountId, { type: "invoice.paid", data, idempotency_key: "in_123-paid" }), { id: pub.id, duplicate: true });
    await assert.rejects(admin.events.publish(accountId, { type: "invoice.paid", data: { other: true }, idempotency_key: "in_123-paid" }), KeyplaneConflictError);
    await assert.rejects(admin.events.publish(accountId, { type: "key.created", data: {} }), (err: unknown) => {
      assert.ok(err instanceof KeyplaneValidationError);
      assert.ok(err.errors.some((e) => e.field.endsWith("type")), JSON.stringify(err.errors));
      return true;
    });

    await message(ep.id, pub.id, (m) => m.status === "delivered");
    assert.deepEqual(await admin.webhooks.retryMessage(pub.id), { requeued: 1 });
    const again = await rx.wait((x) => x.id === pub.id, 2);
    await new Webhook(ep.secret).verify(again.body, again.headers);
    assert.equal(again.body, d.body, "the same message: the same id and body");
    await message(ep.id, pub.id, (m) => m.attempts.length === 2 && m.status === "delivered");
  });

  it("recovers the messages whose delivery failed", async () => {
    let failing = true;
    rx.status = (d) => (failing && d.data.fail === true ? 500 : 204);
    const since = new Date(Date.now() - 1000);
    const pub = await admin.events.publish(accountId, { type: "invoice.paid", data: { fail: true } });
    // The schedule is one retry after 500 ms: two attempts, then failed.
    const m = await message(ep.id, pub.id, (x) => x.status === "failed");
    assert.deepEqual(m.attempts.map((a) => a.status_code), [500, 500]);
    assert.equal(m.next_attempt_at, undefined);
    failing = false;
    assert.deepEqual(await admin.webhooks.recover(ep.id, { since }), { requeued: 1 });
    const d = await rx.wait((x) => x.id === pub.id, 3);
    await new Webhook(ep.secret).verify(d.body, d.headers);
    const done = await message(ep.id, pub.id, (x) => x.status === "delivered");
    assert.deepEqual(done.attempts.map((a) => a.status_code), [500, 500, 204]);
    rx.status = () => 204;
  });

  it("gives the operator's own endpoints every account's keyplane events, not published ones", async () => {
    const op = await admin.webhooks.createOperator({ url: rx.url + "/operator", events: ["key.created"] });
    assert.equal(op.account_id, undefined);
    assert.match(op.secret, /^whsec_/);
    assert.deepEqual((await admin.webhooks.listOperator()).data.map((e) => e.id), [op.id]);
    const all: string[] = [];
    for await (const e of admin.webhooks.allOperator()) all.push(e.id);
    assert.deepEqual(all, [op.id]);

    const other = await admin.accounts.create({ name: "Globex" });
    const key = await admin.keys.create(other.id, { name: "prod" });
    const d = await rx.wait((x) => x.path === "/operator" && x.type === "key.created");
    const ev = await new Webhook(op.secret).verify<{ key: { id: string; account_id: string } }>(d.body, d.headers);
    assert.equal(ev.data.key.id, key.id);
    assert.equal(ev.data.key.account_id, other.id);
    assert.ok(!d.body.includes(key.key), "never the plaintext");

    const pub = await admin.events.publish(accountId, { type: "invoice.paid", data: { n: 1 } });
    await rx.wait((x) => x.id === pub.id && x.path === "/acme");
    const opMessages: string[] = [];
    for await (const m of admin.webhooks.allMessages(op.id)) opMessages.push(m.id);
    assert.ok(!opMessages.includes(pub.id));
    assert.ok(!rx.deliveries.some((x) => x.id === pub.id && x.path === "/operator"));
    await admin.webhooks.delete(op.id);
  });

  it("updates, disables and deletes an endpoint; unknown ids are KeyplaneNotFoundError", async () => {
    const up = await admin.webhooks.update(ep.id, { description: "Billing", events: [], enabled: false });
    assert.equal(up.description, "Billing");
    assert.deepEqual(up.events, [], "[]: every event");
    assert.equal(up.enabled, false);
    assert.ok(Date.parse(up.updated_at) >= Date.parse(up.created_at));
    await assert.rejects(admin.webhooks.test(ep.id), KeyplaneConflictError);
    assert.equal((await admin.webhooks.update(ep.id, { enabled: true })).enabled, true);
    await assert.rejects(admin.webhooks.update(ep.id, { url: "ftp://example.com/hook" }), (err: unknown) => {
      assert.ok(err instanceof KeyplaneValidationError);
      assert.ok(err.errors.some((e) => e.field.endsWith("url")), JSON.stringify(err.errors));
      return true;
    });

    assert.equal(await admin.webhooks.delete(ep.id), undefined);
    await assert.rejects(admin.webhooks.get(ep.id), (err: unknown) => {
      assert.ok(err instanceof KeyplaneNotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, "not_found");
      return true;
    });
    assert.deepEqual((await admin.webhooks.list(accountId)).data, []);
    for (const call of [
      () => admin.webhooks.get("whk_nope"),
      () => admin.webhooks.update("whk_nope", { description: "x" }),
      () => admin.webhooks.delete("whk_nope"),
      () => admin.webhooks.messages("whk_nope"),
      () => admin.webhooks.rotateSecret("whk_nope"),
      () => admin.webhooks.test("whk_nope"),
      () => admin.webhooks.recover("whk_nope", { since: new Date(0) }),
      () => admin.webhooks.retryMessage("msg_nope"),
      () => admin.webhooks.create("acc_nope", { url: rx.url }),
      () => admin.webhooks.list("acc_nope"),
      () => admin.events.publish("acc_nope", { type: "invoice.paid", data: {} }),
    ]) {
      await assert.rejects(call(), KeyplaneNotFoundError);
    }
  });
});
