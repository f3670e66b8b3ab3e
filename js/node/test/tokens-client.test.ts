// The client's tokens group against a real `keyplane serve`: the tokens it
// creates are used by second clients, for verify() and as an account-scoped
// admin, until they are revoked or expire.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  KeyplaneClient,
  KeyplaneConflictError,
  KeyplaneForbiddenError,
  KeyplaneNotFoundError,
  KeyplaneUnauthorizedError,
  KeyplaneValidationError,
  type CreatedToken,
  type Token,
  type TokenRole,
} from "@keyplane/node";
import { KeyplaneServer, sleep } from "./support/keyplane.js";

describe("KeyplaneClient tokens against keyplane serve", () => {
  let kp: KeyplaneServer;
  let admin: KeyplaneClient;
  const client = (token: string) => new KeyplaneClient({ baseUrl: kp.url, token, retries: 0 });
  before(async () => {
    kp = await KeyplaneServer.start();
    admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
  });
  after(() => kp?.cleanup());

  it("creates, lists, gets and revokes tokens that other clients use", async () => {
    const acme = await admin.accounts.create({ name: "Acme" });
    const other = await admin.accounts.create({ name: "Other" });
    const acmeKey = await admin.keys.create(acme.id, { name: "acme-prod" });
    const otherKey = await admin.keys.create(other.id, { name: "other-prod" });

    // A verify token: verify() works with it, the admin API does not.
    const v: CreatedToken = await admin.tokens.create({ name: "api-gateway", role: "verify" });
    assert.match(v.token, /^kpt_[0-9A-Za-z]{36}$/);
    assert.match(v.id, /^tok_/);
    assert.equal(v.role, "verify");
    assert.equal(v.status, "active");
    assert.equal(v.account_id, undefined);
    assert.equal(v.revoked_at, undefined);
    const got: Token = await admin.tokens.get(v.id);
    // @ts-expect-error: the plaintext is only in create's answer
    assert.equal(got.token, undefined, "the plaintext is shown once");
    const { token: _plaintext, ...shown } = v;
    assert.deepEqual(got, shown);

    const verifier = client(v.token);
    const ok = await verifier.verify({ key: acmeKey.key });
    assert.equal(ok.valid, true);
    assert.equal(ok.key_id, acmeKey.id);
    await assert.rejects(verifier.accounts.list(), KeyplaneForbiddenError);

    const revoked = await admin.tokens.revoke(v.id);
    assert.equal(revoked.status, "revoked");
    assert.ok(revoked.revoked_at && Date.parse(revoked.revoked_at) >= Date.parse(v.created_at));
    await assert.rejects(verifier.verify({ key: acmeKey.key }), (err: unknown) => {
      assert.ok(err instanceof KeyplaneUnauthorizedError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.code, "unauthorized");
      return true;
    });
    assert.equal((await admin.tokens.revoke(v.id)).status, "revoked", "revoking it again answers it as it is");

    // An admin token scoped to one account, expiring (a Date is sent as RFC 3339).
    const expires = new Date(Date.now() + 3_600_000);
    const s = await admin.tokens.create({ name: "acme-ops", role: "admin", account_id: acme.id, expires_at: expires });
    assert.equal(s.account_id, acme.id);
    assert.equal(s.role, "admin");
    assert.equal(Date.parse(s.expires_at!), expires.getTime());
    const scoped = client(s.token);
    assert.equal((await scoped.keys.get(acmeKey.id)).id, acmeKey.id);
    assert.deepEqual((await scoped.keys.list(acme.id)).data.map((k) => k.id), [acmeKey.id]);
    assert.equal((await scoped.accounts.get(acme.id)).name, "Acme");
    await assert.rejects(scoped.keys.get(otherKey.id), KeyplaneNotFoundError);
    await assert.rejects(scoped.accounts.get(other.id), KeyplaneNotFoundError);
    await assert.rejects(scoped.plans.list(), KeyplaneForbiddenError);
    await assert.rejects(scoped.tokens.list(), KeyplaneForbiddenError);
    await assert.rejects(scoped.verify({ key: acmeKey.key }), KeyplaneForbiddenError, "verification takes a verify token");

    // A token that expires: listed as expired, refused.
    const e = await admin.tokens.create({ name: "short", role: "verify", expires_at: new Date(Date.now() + 300) });
    assert.equal(e.status, "active");
    assert.equal((await client(e.token).verify({ key: acmeKey.key })).valid, true);
    await sleep(400);
    await assert.rejects(client(e.token).verify({ key: acmeKey.key }), KeyplaneUnauthorizedError);
    assert.equal((await admin.tokens.get(e.id)).status, "expired");

    // The list, newest first, with statuses; all() pages through it.
    const first = await admin.tokens.list({ limit: 2 });
    assert.equal(first.data.length, 2);
    assert.notEqual(first.next_cursor, "");
    const listed: Token[] = [];
    for await (const t of admin.tokens.all()) listed.push(t);
    assert.deepEqual(
      listed.map((t) => [t.name, t.role, t.status, t.account_id ?? ""]),
      [
        ["short", "verify", "expired", ""],
        ["acme-ops", "admin", "active", acme.id],
        ["api-gateway", "verify", "revoked", ""],
        ["first admin token", "admin", "active", ""],
      ],
    );
    assert.deepEqual(first.data.map((t) => t.id), [listed[0]!.id, listed[1]!.id]);
    assert.ok(listed.every((t) => !("token" in t)), "no secret in the list");
    const mine = listed.at(-1)!;

    // Errors: unknown ids, bad input.
    await assert.rejects(admin.tokens.get("tok_nope"), KeyplaneNotFoundError);
    await assert.rejects(admin.tokens.revoke("tok_nope"), KeyplaneNotFoundError);
    await assert.rejects(admin.tokens.create({ name: "x", role: "verify", account_id: acme.id }), (err: unknown) => {
      assert.ok(err instanceof KeyplaneValidationError, String(err));
      assert.ok(err.errors.some((f) => f.field.includes("account_id")), JSON.stringify(err.errors));
      return true;
    });
    await assert.rejects(admin.tokens.create({ name: "x", role: "owner" as TokenRole }), KeyplaneValidationError);
    await assert.rejects(admin.tokens.create({ name: "x", role: "admin", account_id: "acc_nope" }), KeyplaneValidationError);

    // Revoking an operator-wide admin token is fine while another is usable
    // (the scoped one does not count); the last one is a conflict without force.
    const o = await admin.tokens.create({ name: "ops", role: "admin" });
    const ops = client(o.token);
    assert.equal((await ops.tokens.revoke(mine.id)).status, "revoked");
    await assert.rejects(admin.tokens.list(), KeyplaneUnauthorizedError, "the instance that revoked it refuses it at once");
    await assert.rejects(ops.tokens.revoke(o.id), (err: unknown) => {
      assert.ok(err instanceof KeyplaneConflictError, String(err));
      assert.equal(err.status, 409);
      assert.equal(err.code, "conflict");
      return true;
    });
    assert.equal((await ops.tokens.get(o.id)).status, "active");
    assert.equal((await ops.tokens.revoke(o.id, { force: true })).status, "revoked");
    await assert.rejects(ops.tokens.list(), KeyplaneUnauthorizedError);
    assert.equal((await scoped.keys.get(acmeKey.id)).id, acmeKey.id, "the scoped token still works");
  });
});
