// npm test: builds keyplane from this repository once (go build), then runs
// the compiled tests (build-test/, from `npm run pretest`) with node's test
// runner; every test file starts its own `keyplane serve` from that binary.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(pkg, "../..");
const env = { ...process.env };
let dir;
if (!env.KEYPLANE_BIN) {
  dir = mkdtempSync(join(tmpdir(), "keyplane-js-bin-"));
  env.KEYPLANE_BIN = join(dir, "keyplane");
  const t = Date.now();
  execFileSync("go", ["build", "-o", env.KEYPLANE_BIN, "./cmd/keyplane"], { cwd: root, stdio: "inherit" });
  console.log(`built keyplane in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}
const testDir = join(pkg, "build-test", "test");
const files = readdirSync(testDir).filter((f) => f.endsWith(".test.js")).sort().map((f) => join(testDir, f));
const args = ["--test", "--test-reporter=spec", ...process.argv.slice(2), ...files];
const run = spawnSync(process.execPath, args, { stdio: "inherit", env });
if (dir) rmSync(dir, { recursive: true, force: true });
process.exit(run.status ?? 1);
