// The README's Hono example, run as written: the README's code block must be
// examples/hono.ts, which is compiled with the tests and started here as its
// own process against a real keyplane serve.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { KeyplaneClient } from "@keyplane/node";
import { closedPort } from "./support/apps.js";
import { KeyplaneServer, sleep } from "./support/keyplane.js";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..", "..");

describe("README's Hono example", () => {
  let kp: KeyplaneServer;
  let child: ChildProcess | undefined;
  before(async () => {
    kp = await KeyplaneServer.start();
  });
  after(async () => {
    child?.kill();
    await kp?.cleanup();
  });

  it("is examples/hono.ts, ten lines", () => {
    const readme = readFileSync(join(pkg, "README.md"), "utf8");
    const block = /<!-- examples\/hono\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, "README.md has no block after <!-- examples/hono.ts -->");
    const file = readFileSync(join(pkg, "examples", "hono.ts"), "utf8");
    assert.equal(block, file);
    assert.ok(file.trim().split("\n").length <= 10);
  });

  it("admits a valid key and refuses a missing one, as its own process", async () => {
    const admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
    const acc = await admin.accounts.create({ name: "Example", allowed_scopes: ["things:*"] });
    const k = await admin.keys.create(acc.id, { name: "ex", scopes: ["things:read"] });
    const port = new URL(await closedPort()).port; // free a moment ago
    child = spawn(process.execPath, [join(pkg, "build-test", "examples", "hono.js")], {
      env: { ...process.env, KEYPLANE_URL: kp.url, KEYPLANE_TOKEN: kp.createToken("verify"), PORT: port },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const url = `http://127.0.0.1:${port}/things/42`;
    let res: Response | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(50)) {
      try {
        res = await fetch(url, { headers: { Authorization: "Bearer " + k.key } });
        break;
      } catch {
        // not listening yet
      }
    }
    assert.ok(res, "the example did not start");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { thing: "42", account: acc.id });
    const refused = await fetch(url);
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "missing_key");
  });
});
