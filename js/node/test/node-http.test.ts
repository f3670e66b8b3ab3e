// The framework-free verifyRequest, on node:http alone: the same behaviour as
// the Hono and Express adapters.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Guard } from "@keyplane/node";
import { nodeApp } from "./support/apps.js";
import { middlewareSuite } from "./support/scenario.js";

middlewareSuite("node:http with verifyRequest", nodeApp);

describe("verifyRequest on a Fetch API Request", () => {
  it("refuses a request without a key with a ready Response, without asking keyplane", async () => {
    // Nothing listens at this address: a missing key never reaches keyplane.
    const guard = new Guard({ baseUrl: "http://127.0.0.1:9", token: "t", usage: false });
    const out = await guard.verifyRequest(new Request("http://api.test/things/1", { headers: { authorization: "Basic abc" } }));
    assert.equal(out.ok, false);
    if (out.ok) return;
    const res = out.response();
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="api"');
    assert.deepEqual(await res.json(), {
      type: "urn:keyplane:problem:missing_key",
      title: "Unauthorized",
      status: 401,
      detail: "no API key: send X-Api-Key: <key> or Authorization: Bearer <key>",
      code: "missing_key",
    });
  });
});
