/**
 * The database off the boot path, with `main.ts serve` in a namespace: while another process
 * holds the SQLite write lock (an admin's backup, a stuck script), boot scripts and metrics
 * still answer at once, and a new client's ACK waits for it (its lease must be on disk first)
 * while the server goes on answering; the contacts and history lines they made are written once
 * the lock is gone; a damaged database stops the server at start with one line and a non-zero
 * exit instead of failing every boot later. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  bridgeLab,
  DENO_NS_FLAGS,
  type LineFollower,
  repoPath,
  serveConfig,
  startServe,
  udhcpcLease,
  until,
} from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";

const SERVER_IP = "10.84.0.1";
const BASE = `http://${SERVER_IP}:8080`;

/** Status and seconds of one curl from `ns`. */
async function timed(ns: Netns, path: string): Promise<{ status: number; seconds: number }> {
  const r = await ns.exec(
    ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", BASE + path],
    { check: false, timeoutMs: 20_000 },
  );
  const [status, seconds] = r.stdout.split(" ").map(Number);
  return { status: status!, seconds: seconds! };
}

/** A process that takes the write lock of `file` and holds it until killed. */
async function holdLock(file: string): Promise<Deno.ChildProcess> {
  const code = `import { DatabaseSync } from "node:sqlite";
const db = new DatabaseSync(${JSON.stringify(file)});
db.exec("BEGIN EXCLUSIVE");
db.exec("INSERT INTO machines (mac, first_seen, last_seen) VALUES ('00:00:00:00:00:01', 0, 0)");
console.log("locked");
setTimeout(() => {}, 120_000);`;
  const child = new Deno.Command("deno", {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value).trim(), "locked");
  reader.releaseLock();
  return child;
}

Deno.test({
  name: "main.ts serve: a held database lock does not slow a boot; a damaged database stops it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 2);
    const client = lab.clients[0]!;
    const mac = lab.macs[0]!;
    const dir = await Deno.makeTempDir({ prefix: "abd-db-" });
    let serve: LineFollower | undefined;
    let holder: Deno.ChildProcess | undefined;
    // When the first step held the lock: the history lines it held up are from then.
    const locked = { from: 0, until: 0 };
    try {
      await Deno.mkdir(`${dir}/tree`);
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        serveConfig(dir, `range = ["10.84.0.100", "10.84.0.120"]`),
      );
      serve = await startServe(lab.server, dir, { extra: ["--log-level", "debug"] });
      assert.ok(await udhcpcLease(client, dir, "c"));

      await t.step(
        "with another process holding the write lock, /boot.ipxe answers at once",
        async () => {
          holder = await holdLock(`${dir}/data/leases.db`);
          const times: number[] = [];
          let metrics;
          locked.from = Date.now();
          try {
            for (let i = 0; i < 5; i++) {
              const r = await timed(client, `/boot.ipxe?mac=${mac}`);
              assert.equal(r.status, 200);
              times.push(r.seconds);
            }
            metrics = await timed(client, "/metrics");
          } finally {
            locked.until = Date.now();
            holder.kill("SIGTERM");
            await holder.status;
            holder = undefined;
          }
          assert.equal(metrics.status, 200);
          // The first request also warms the script cache; all must be quick.
          assert.ok(Math.max(...times) < 0.1, `boot script took ${times.join(", ")} s`);
          assert.ok(metrics.seconds < 0.1, `metrics took ${metrics.seconds} s`);
          // The bookkeeping the lock holds up is kept for the next try, said at debug level.
          const busy = serve!.lines.filter((l) => l.includes("bookkeeping kept for the next try"));
          assert.ok(busy.length > 0, serve!.output);
          assert.ok(busy.every((l) => l.includes('"level":"debug"')), busy.join("\n"));
        },
      );

      await t.step(
        "with the lock held, a new client's ACK waits for it; others are answered",
        async () => {
          const [newcomer, newMac] = [lab.clients[1]!, lab.macs[1]!];
          holder = await holdLock(`${dir}/data/leases.db`);
          const acks = () => serve!.lines.filter((l) => l.includes('"msg":"DHCPACK ')).length;
          const before = acks();
          let bound: Promise<string | null> | undefined;
          try {
            // Four REQUESTs 2 s apart: the lock goes away while the client still asks.
            bound = udhcpcLease(newcomer, dir, "busy", 2, ["-t", "4"]);
            await until(
              () => serve!.lines.some((l) => l.includes('"msg":"DHCPOFFER ')) || undefined,
              20_000,
              "an OFFER while the database is locked",
            );
            await new Promise((r) => setTimeout(r, 1500));
            assert.equal(acks(), before, "an ACK left before its lease was written");
            const metrics = await timed(client, "/metrics");
            assert.equal(metrics.status, 200);
            assert.ok(metrics.seconds < 0.1, `metrics took ${metrics.seconds} s`);
          } finally {
            holder.kill("SIGTERM");
            await holder.status;
            holder = undefined;
          }
          assert.ok(await bound, serve!.output);
          // The server's log line may come a moment after the client has its lease.
          await until(() => acks() > before || undefined, 5_000, "the newcomer's DHCPACK line");
          const db = new DatabaseSync(`${dir}/data/leases.db`, { readOnly: true });
          const row = db.prepare("SELECT state FROM dhcp_leases WHERE mac = ?").get(newMac);
          db.close();
          assert.equal(row?.state, "bound");
        },
      );

      await t.step("after the lock is gone, what it held up is written", async () => {
        assert.equal((await timed(client, `/boot.ipxe?mac=${mac}`)).status, 200);
        const token = (await Deno.readTextFile(`${dir}/data/api-token`)).trim();
        const r = await client.exec(
          ["curl", "-sS", "-H", `Authorization: Bearer ${token}`, `${BASE}/api/machines/${mac}`],
          { check: false, timeoutMs: 20_000 },
        );
        const history = JSON.parse(r.stdout).history as { kind: string; at: number }[];
        // Six menus, five while the lock was held, one after: repeats within REPEAT_MS are one
        // line (two, should the step between have taken that long); the oldest is the one the
        // lock held up, not lost.
        const menus = history.filter((h) => h.kind === "menu");
        assert.ok(menus.length === 1 || menus.length === 2, r.stdout);
        const held = menus.at(-1)!.at;
        assert.ok(held >= locked.from && held <= locked.until, `${held} in the lock's time`);
      });

      await t.step("a damaged database: one line, exit 1, nothing bound", async () => {
        assert.equal((await serve!.stop()).code, 0);
        serve = undefined;
        const file = `${dir}/data/leases.db`;
        // Fill the database so that it has pages to damage, then overwrite page 3 onwards.
        const db = new DatabaseSync(file);
        db.exec("CREATE TABLE filler (x TEXT)");
        for (let i = 0; i < 200; i++) db.exec(`INSERT INTO filler VALUES ('${"x".repeat(500)}')`);
        db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        db.close();
        const bytes = await Deno.readFile(file);
        const page = new DataView(bytes.buffer).getUint16(16);
        bytes.fill(0xa5, page * 2, page * 6);
        await Deno.writeFile(file, bytes);
        const r = await lab.server.exec(
          [
            "deno",
            "run",
            ...DENO_NS_FLAGS,
            repoPath("main.ts"),
            "serve",
            "-c",
            `${dir}/config.toml`,
          ],
          { check: false, timeoutMs: 60_000 },
        );
        assert.equal(r.code, 1, r.stdout + r.stderr);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, r.stderr);
        assert.match(
          lines[0]!,
          /^astralboot: \S+\/leases\.db is damaged \(.+\); stop, move it aside/,
        );
        assert.doesNotMatch(r.stdout + r.stderr, /listening/);
      });
    } finally {
      if (holder) {
        holder.kill("SIGTERM");
        await holder.status;
      }
      if (serve) await serve.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
