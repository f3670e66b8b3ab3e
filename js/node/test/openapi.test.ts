// The client is generated from (and checked against) keyplane's OpenAPI
// document: these fail when the server's document, the committed copy
// (openapi.json) and the generated types (src/openapi.ts) drift apart.
// Fix: `npm run openapi -w node` (from js/), then adapt src/client.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { operationIds } from "@keyplane/node";
import { KeyplaneServer } from "./support/keyplane.js";
import { generateTypes, normalize } from "./support/openapi-gen.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const committed = JSON.parse(readFileSync(join(pkg, "openapi.json"), "utf8"));
const hint = "run `npm run openapi -w node` in js/ and adapt src/client.ts";

/** Operations the client leaves out on purpose: forward-auth is for reverse proxies. */
const notInClient = new Set(["forwardAuth", "githubSecretScanning"]); // called by proxies and by GitHub, not by API clients

describe("OpenAPI document", () => {
  let kp: KeyplaneServer;
  before(async () => {
    kp = await KeyplaneServer.start();
  });
  after(() => kp?.cleanup());

  it("keyplane serve's /openapi.json is the committed js/node/openapi.json", async () => {
    const res = await fetch(kp.url + "/openapi.json");
    assert.equal(res.status, 200);
    const served = await res.json();
    assert.deepEqual(normalize(served), normalize(committed), `the API changed: ${hint}`);
  });

  it("src/openapi.ts is what openapi-typescript generates from the committed document", async () => {
    const types = readFileSync(join(pkg, "src", "openapi.ts"), "utf8");
    assert.equal(types, await generateTypes(committed), `src/openapi.ts is stale: ${hint}`);
  });

  it("the client implements every operation of the document but forward-auth", () => {
    const inDoc = new Set<string>();
    for (const item of Object.values(committed.paths) as Record<string, { operationId?: string }>[]) {
      for (const op of Object.values(item)) if (op.operationId) inDoc.add(op.operationId);
    }
    const missing = [...inDoc].filter((id) => !notInClient.has(id) && !(operationIds as readonly string[]).includes(id));
    const gone = operationIds.filter((id) => !inDoc.has(id));
    assert.deepEqual(missing, [], `operations the client lacks: ${hint}`);
    assert.deepEqual(gone, [], "operations the client has that the document no longer has");
  });
});
