// Standard Webhooks verification, against the spec's published example
// (the reference libraries' test vector) and the ways a message goes wrong.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Webhook, verifyWebhook, WebhookVerificationError } from "@keyplane/node/webhooks";

// The Standard Webhooks reference libraries' vector: this secret, id,
// timestamp and payload sign to this signature.
const vector = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};
const at = (seconds: number) => () => seconds * 1000;
const headers = (sig = vector.signature, ts = String(vector.timestamp), id = vector.id) => ({
  "webhook-id": id,
  "webhook-timestamp": ts,
  "webhook-signature": sig,
});

describe("webhook verification (Standard Webhooks)", () => {
  it("signs the spec's vector to the published signature", async () => {
    assert.equal(await new Webhook(vector.secret).sign(vector.id, vector.timestamp, vector.payload), vector.signature);
  });

  it("verifies the vector and returns the parsed body, with or without the whsec_ prefix, from Headers too", async () => {
    const opts = { now: at(vector.timestamp) };
    assert.deepEqual(await verifyWebhook(vector.secret, vector.payload, headers(), opts), { test: 2432232314 });
    assert.deepEqual(await verifyWebhook(vector.secret.slice(6), vector.payload, headers(), opts), { test: 2432232314 });
    assert.deepEqual(await verifyWebhook(vector.secret, new TextEncoder().encode(vector.payload), new Headers(headers()), opts), { test: 2432232314 });
  });

  it("accepts any of several signatures (a rotation's overlap), ignoring other versions", async () => {
    const sig = ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", vector.signature].join(" ");
    await verifyWebhook(vector.secret, vector.payload, headers(sig), { now: at(vector.timestamp) });
    // And a receiver given both secrets accepts a message signed with either.
    const other = "whsec_" + Buffer.from("another secret of 32 bytes, ok!!").toString("base64");
    await new Webhook([other, vector.secret], { now: at(vector.timestamp) }).verify(vector.payload, headers());
  });

  const refused: [string, () => Promise<unknown>][] = [
    ["a changed body", () => verifyWebhook(vector.secret, '{"test": 2432232315}', headers(), { now: at(vector.timestamp) })],
    ["a changed id", () => verifyWebhook(vector.secret, vector.payload, headers(vector.signature, String(vector.timestamp), "msg_other"), { now: at(vector.timestamp) })],
    ["another secret", () => verifyWebhook("whsec_" + Buffer.from("x".repeat(32)).toString("base64"), vector.payload, headers(), { now: at(vector.timestamp) })],
    ["a truncated signature", () => verifyWebhook(vector.secret, vector.payload, headers(vector.signature.slice(0, 8)), { now: at(vector.timestamp) })],
    ["an empty signature", () => verifyWebhook(vector.secret, vector.payload, headers("v1,"), { now: at(vector.timestamp) })],
    ["a missing header", () => verifyWebhook(vector.secret, vector.payload, { "webhook-id": vector.id, "webhook-timestamp": String(vector.timestamp) }, { now: at(vector.timestamp) })],
    ["a timestamp that is not a number", () => verifyWebhook(vector.secret, vector.payload, headers(vector.signature, "hello"), { now: at(vector.timestamp) })],
    ["a timestamp over 5 minutes old", () => verifyWebhook(vector.secret, vector.payload, headers(), { now: at(vector.timestamp + 301) })],
    ["a timestamp over 5 minutes ahead", () => verifyWebhook(vector.secret, vector.payload, headers(), { now: at(vector.timestamp - 301) })],
  ];
  for (const [what, call] of refused) {
    it(`refuses ${what}`, async () => {
      await assert.rejects(call(), WebhookVerificationError);
    });
  }

  it("accepts a timestamp within the 5 minutes either way", async () => {
    await verifyWebhook(vector.secret, vector.payload, headers(), { now: at(vector.timestamp + 300) });
    await verifyWebhook(vector.secret, vector.payload, headers(), { now: at(vector.timestamp - 300) });
  });
});
