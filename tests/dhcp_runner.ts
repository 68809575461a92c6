/**
 * Runs the DHCP service alone inside a test namespace (no TFTP, no HTTP):
 *
 *   ip netns exec NS deno run <flags> tests/dhcp_runner.ts '<json DhcpServerOptions>'
 *
 * The JSON is {@linkcode DhcpServiceOptions} without logger and db, plus `dataDir`. Log lines go
 * to stdout as JSON (debug level); `{"ready":true}` is printed once the sockets are open; SIGTERM
 * closes the server and exits 0. A start-up error prints `{"error": …}` and exits 2, as main.ts
 * will.
 *
 * @module
 */
import { createLogger } from "../log.ts";
import { openDatabase } from "../state/db.ts";
import { type DhcpServiceOptions, startDhcpService } from "../app/dhcp.ts";
import { mustParseMac } from "../net/mac.ts";

const enc = new TextEncoder();
const print = (v: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(v) + "\n"));

const raw = JSON.parse(Deno.args[0] ?? "{}") as
  & Omit<DhcpServiceOptions, "logger" | "db" | "machines">
  & { machines?: { mac: string; ip?: string; hostname?: string }[] }
  & { dataDir?: string };
const logger = createLogger({ level: "debug", format: "json" });
let server;
try {
  const db = raw.dataDir ? openDatabase(raw.dataDir) : undefined;
  // JSON has no Mac type: the MACs are parsed here, where they enter.
  const machines = raw.machines?.map((m) => ({ ...m, mac: mustParseMac(m.mac) }));
  server = await startDhcpService({ ...raw, machines, db, logger });
} catch (e) {
  print({ error: (e as Error).message });
  Deno.exit(2);
}
print({ ready: true, mode: server.mode });

const stop = async () => {
  await server.close();
  print({ stopped: true });
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
