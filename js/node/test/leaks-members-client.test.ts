// The client's leak report and member credential calls against a real
// `keyplane serve`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { KeyplaneClient, KeyplaneConflictError, KeyplaneForbiddenError, KeyplaneNotFoundError } from "@keyplane/node";
import { KeyplaneServer } from "./support/keyplane.js";

describe("KeyplaneClient leaks and member credentials against keyplane serve", () => {
  let kp: KeyplaneServer;
  let admin: KeyplaneClient;
  before(async () => {
    kp = await KeyplaneServer.start();
    admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
  });
  after(() => kp?.cleanup());

  it("reports a leaked key once: revoked, then nothing more", async () => {
    const acc = await admin.accounts.create({ name: "Acme" });
    const k = await admin.keys.create(acc.id, { name: "prod" });
    const first = await admin.keys.reportLeaked({ key: k.key, source_url: "https://example.com/leak" });
    assert.equal(first.first_report, true);
    assert.equal(first.action, "revoke");
    assert.equal(first.key.status, "revoked");
    const again = await admin.keys.reportLeaked({ key: k.key });
    assert.equal(again.first_report, false);
    assert.equal((await admin.verify({ key: k.key })).code, "REVOKED");
  });

  it("issues reset links, refuses an operator's password change, deletes members but the last owner", async () => {
    const acc = await admin.accounts.create({ name: "Members" });
    kp.createMember(acc.id, "owner@example.com", "owner");
    const password = kp.createMember(acc.id, "dev@example.com", "developer");
    const members = (await admin.accounts.members(acc.id)).data;
    const owner = members.find((m) => m.email === "owner@example.com")!;
    const dev = members.find((m) => m.email === "dev@example.com")!;
    const reset = await admin.members.issuePasswordReset(dev.id);
    assert.match(reset.reset_url, /\/portal\/reset\?token=/);
    await assert.rejects(
      admin.members.changePassword(dev.id, { current_password: password, new_password: "another long password" }),
      KeyplaneForbiddenError,
    );
    await admin.members.delete(dev.id);
    await assert.rejects(admin.members.issuePasswordReset(dev.id), KeyplaneNotFoundError);
    await assert.rejects(admin.members.delete(owner.id), KeyplaneConflictError);
  });
});
