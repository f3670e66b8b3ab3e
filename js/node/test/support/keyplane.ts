// A real `keyplane serve` for the tests: built from this repository once per
// test run (scripts/test.mjs builds it and passes KEYPLANE_BIN), started on
// 127.0.0.1:0 with a SQLite file in a temporary directory; the first admin
// token is read from its stdout, the address from its log line
// msg="keyplane listening" addr=… (as cmd/keyplane/process_test.go does).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** repoRoot is the Go module's root: the nearest parent with go.mod. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "go.mod"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("no go.mod above " + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

let built: string | undefined;

/** binary returns KEYPLANE_BIN, or builds keyplane into a temporary directory (once per process). */
export function binary(): string {
  if (process.env.KEYPLANE_BIN) return process.env.KEYPLANE_BIN;
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "keyplane-js-bin-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "keyplane");
  execFileSync("go", ["build", "-o", out, "./cmd/keyplane"], { cwd: repoRoot(), stdio: ["ignore", "inherit", "inherit"] });
  built = out;
  return out;
}

export interface StartOptions {
  /** database path; default a fresh SQLite file in a temporary directory. */
  database?: string;
  args?: string[];
}

export class KeyplaneServer {
  readonly url: string;
  /** token is the first admin token, printed once on an empty database. */
  readonly token: string;
  readonly dir: string;
  readonly database: string;
  private readonly child: ChildProcess;
  private logs: string[];

  private constructor(child: ChildProcess, url: string, token: string, dir: string, database: string, logs: string[]) {
    this.child = child;
    this.url = url;
    this.token = token;
    this.dir = dir;
    this.database = database;
    this.logs = logs;
  }

  static async start(opts: StartOptions = {}): Promise<KeyplaneServer> {
    const dir = mkdtempSync(join(tmpdir(), "keyplane-js-"));
    const database = opts.database ?? join(dir, "k.db");
    const tokenFile = join(dir, "first-admin-token");
    const child = spawn(binary(), ["serve", "--addr", "127.0.0.1:0", "--database", database, "--first-token-file", tokenFile, ...(opts.args ?? [])], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    const logs: string[] = [];
    child.stdout!.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    const addr = await new Promise<string>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error("keyplane did not start within 30 s:\n" + logs.join(""))), 30_000);
      let buf = "";
      child.stderr!.setEncoding("utf8").on("data", (s: string) => {
        logs.push(s);
        buf += s;
        const m = /msg="keyplane listening" addr=(\S+)/.exec(buf);
        if (m) {
          clearTimeout(timer);
          ok(m[1]!);
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`keyplane exited (${code}) before listening:\n` + logs.join("")));
      });
    });
    // The first admin token is written to its file before the listening line
    // (never to stdout, which is not a terminal here).
    let token = "";
    try {
      token = /kpt_[0-9A-Za-z]{36}/.exec(readFileSync(tokenFile, "utf8"))?.[0] ?? "";
    } catch {
      // an existing database: no new token
    }
    if (!token && !opts.database) throw new Error("keyplane wrote no first admin token:\n" + stdout + logs.join(""));
    return new KeyplaneServer(child, "http://" + addr, token, dir, database, logs);
  }

  /** createMember runs `keyplane member create` on the server's database and returns the generated password. */
  createMember(accountId: string, email: string, role: "owner" | "developer" | "viewer"): string {
    return execFileSync(binary(), ["member", "create", "--account", accountId, "--email", email, "--role", role, "--database", this.database], { encoding: "utf8" }).trim();
  }

  /** createToken runs `keyplane token create` on the server's database and returns the token. */
  createToken(role: "admin" | "verify", name = "test-" + role): string {
    return execFileSync(binary(), ["token", "create", "--name", name, "--role", role, "--database", this.database], { encoding: "utf8" }).trim();
  }

  get log(): string {
    return this.logs.join("");
  }

  /** stop ends the process (SIGTERM, SIGKILL after 5 s) and waits for it. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((ok) => this.child.once("exit", () => ok()));
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }

  /** cleanup stops the process and removes its files. */
  async cleanup(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

