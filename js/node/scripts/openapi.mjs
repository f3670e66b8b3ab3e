// Writes js/node/openapi.json (fetched from a freshly built `keyplane serve`)
// and src/openapi.ts (types generated from it). Run after an API change:
//   npm run openapi -w node      (from js/)
// test/openapi.test.ts fails while either file differs from what this writes.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KeyplaneServer } from "../build-test/test/support/keyplane.js";
import { generateTypes, serialize } from "../build-test/test/support/openapi-gen.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const server = await KeyplaneServer.start();
try {
  const res = await fetch(server.url + "/openapi.json");
  if (!res.ok) throw new Error(`GET /openapi.json: ${res.status}`);
  const doc = await res.json();
  writeFileSync(join(pkg, "openapi.json"), serialize(doc));
  writeFileSync(join(pkg, "src", "openapi.ts"), await generateTypes(doc));
  console.log("wrote openapi.json and src/openapi.ts");
} finally {
  await server.cleanup();
}
