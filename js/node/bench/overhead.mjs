// The middleware's overhead per request with a warm cache, in one run: three
// Hono apps on 127.0.0.1 serving the same route (bare; behind a middleware
// that only calls next, which is what any Hono middleware costs; behind
// keyplane(guard)), loaded in turn by autocannon, in alternating orders;
// then the same apps in-process (app.request, no sockets).
//
//   npm run bench -w node            (from js/; BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS)
import autocannon from "autocannon";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import { Guard, KeyplaneClient } from "@keyplane/node";
import { keyplane } from "@keyplane/node/hono";
import { KeyplaneServer } from "../build-test/test/support/keyplane.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 8);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const here = dirname(fileURLToPath(import.meta.url));

const kp = await KeyplaneServer.start();
const admin = new KeyplaneClient({ baseUrl: kp.url, token: kp.token });
const acc = await admin.accounts.create({ name: "Bench", allowed_scopes: ["things:*"] });
const key = (await admin.keys.create(acc.id, { name: "bench", scopes: ["things:read"] })).key;
const token = kp.createToken("verify", "bench");

const apps = spawn(process.execPath, [join(here, "apps.mjs")], {
  env: { ...process.env, KEYPLANE_URL: kp.url, KEYPLANE_TOKEN: token },
  stdio: ["ignore", "pipe", "inherit", "ipc"],
});
const cpu = () => new Promise((ok) => { apps.once("message", (u) => ok(u.user + u.system)); apps.send("cpu"); });
const ports = JSON.parse(await new Promise((ok) => createInterface({ input: apps.stdout }).once("line", ok)));
const url = (which) => `http://127.0.0.1:${ports[which]}/things/42`;
const headers = { authorization: "Bearer " + key };

// Throughput and latency move with whatever else the machine runs; the app
// process's CPU time per request (user + system, µs) moves much less.
async function load(which, duration) {
  const before = await cpu();
  const r = await autocannon({ url: url(which), connections, duration, headers });
  const used = (await cpu()) - before;
  if (r.non2xx || r.errors || r.timeouts) throw new Error(`${which}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, total: r.requests.total, cpu: used / r.requests.total };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { bare: [], noop: [], guarded: [] };
const orders = [["bare", "noop", "guarded"], ["guarded", "noop", "bare"]];
try {
  // Warm up both (the guard's cache, the JIT), then alternate.
  await load("bare", 2);
  await load("noop", 2);
  await load("guarded", 2);
  for (let i = 0; i < rounds; i++) {
    for (const which of orders[i % 2]) {
      const r = await load(which, seconds);
      results[which].push(r);
      console.log(`round ${i + 1} ${which.padEnd(7)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  ${r.cpu.toFixed(1)} µs CPU/req`);
    }
  }
} finally {
  apps.kill("SIGTERM");
  await new Promise((ok) => apps.once("exit", ok));
}

// In-process: the same app through app.request (no sockets), warm cache.
const guard = new Guard({ baseUrl: kp.url, token, cacheTtlMs: 600_000, usage: false });
const handler = (c) => c.json({ thing: c.req.param("id") });
const bare = new Hono().get("/things/:id", handler);
const noop = new Hono().get("/things/:id", async (_c, next) => { await next(); }, handler);
const guarded = new Hono().get("/things/:id", keyplane(guard, { scope: "things:read" }), handler);
async function perOp(app, n) {
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const res = await app.request("/things/42", { headers });
    if (res.status !== 200) throw new Error("status " + res.status);
    await res.arrayBuffer();
  }
  const u = process.cpuUsage(t);
  return (u.user + u.system) / n; // CPU µs per request
}
await perOp(guarded, 20_000); // warm: the first verifies with keyplane, then the cache answers
await perOp(bare, 20_000);
await perOp(noop, 20_000);
const inproc = { bare: [], noop: [], guarded: [] };
for (let i = 0; i < 5; i++) {
  inproc.bare.push(await perOp(bare, 100_000));
  inproc.noop.push(await perOp(noop, 100_000));
  inproc.guarded.push(await perOp(guarded, 100_000));
}
await guard.close();
await kp.cleanup();

const rb = median(results.bare.map((r) => r.rps));
const rn = median(results.noop.map((r) => r.rps));
const rg = median(results.guarded.map((r) => r.rps));
const cb = median(results.bare.map((r) => r.cpu));
const cn = median(results.noop.map((r) => r.cpu));
const cg = median(results.guarded.map((r) => r.cpu));
const line = (name, rs, rps) =>
  `  ${name.padEnd(8)} ${rps.toFixed(0)} req/s  p50 ${median(rs.map((r) => r.p50))} ms  p99 ${median(rs.map((r) => r.p99))} ms  ${median(rs.map((r) => r.cpu)).toFixed(1)} µs CPU/req`;
const ib = median(inproc.bare);
const ign = median(inproc.noop);
const ig = median(inproc.guarded);
console.log(`
HTTP (autocannon, ${connections} connections, ${rounds} rounds of ${seconds} s each, medians):
${line("bare", results.bare, rb)}
${line("noop", results.noop, rn)}   (a middleware that only calls next)
${line("guarded", results.guarded, rg)}
  throughput guarded/bare ${(rg / rb).toFixed(3)}
  app CPU per request: guarded − bare ${(cg - cb).toFixed(1)} µs, of which any Hono middleware (noop − bare) ${(cn - cb).toFixed(1)} µs: keyplane's own ${(cg - cn).toFixed(1)} µs
In-process (app.request, no sockets, CPU time, 5 × 100 000, medians):
  bare ${ib.toFixed(2)} µs/op, noop ${ign.toFixed(2)} µs/op, guarded ${ig.toFixed(2)} µs/op:
  keyplane's middleware costs ${(ig - ib).toFixed(2)} µs per request over the bare route, ${(ig - ign).toFixed(2)} µs over the no-op middleware`);
