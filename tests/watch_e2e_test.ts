/**
 * A boot you can watch, end to end: `main.ts serve` runs in a server namespace (bridge br0),
 * a client namespace gets a lease with udhcpc, fetches a file over TFTP (tftp-hpa) and over
 * HTTP (curl), and then /metrics, /api/events, /api/overview and the live event stream must
 * tell exactly that. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  DENO_NS_FLAGS,
  hookScript,
  LineFollower,
  readEnv,
  repoPath,
} from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";
import type { WatchEvent } from "../observe/events.ts";
import type { Overview } from "../http/watch_routes.ts";

const SERVER_IP = "10.81.0.1";
const BASE = `http://${SERVER_IP}:8080`;

/** A boot tree: a first-stage loader for TFTP, a kernel and an initrd for HTTP. */
async function makeTree(dir: string): Promise<{ loader: Uint8Array; kernel: Uint8Array }> {
  const loader = crypto.getRandomValues(new Uint8Array(50_000));
  const kernel = crypto.getRandomValues(new Uint8Array(30_000));
  await Deno.mkdir(`${dir}/tree/tftp`, { recursive: true });
  await Deno.mkdir(`${dir}/tree/boot/tiny/images`, { recursive: true });
  await Deno.writeFile(`${dir}/tree/tftp/undionly.kpxe`, loader);
  await Deno.writeFile(`${dir}/tree/boot/tiny/images/vmlinuz`, kernel);
  await Deno.writeFile(`${dir}/tree/boot/tiny/images/initrd.img`, new Uint8Array(1000));
  return { loader, kernel };
}

/** curl inside the client namespace; its body, failing the test on a non-2xx answer. */
async function curl(ns: Netns, path: string): Promise<string> {
  const r = await ns.exec(["curl", "-sS", "--fail", "--max-time", "20", `${BASE}${path}`], {
    check: false,
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
  return r.stdout;
}

/** The value of one sample line of a Prometheus exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test({
  name: "main.ts serve: /metrics, /api/events and the live stream show a DHCP+TFTP+HTTP boot",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abw", `${SERVER_IP}/24`, 1);
    const client = lab.clients[0]!;
    const mac = lab.macs[0]!;
    const dir = await Deno.makeTempDir({ prefix: "abw-watch-" });
    let serve: LineFollower | undefined;
    let stream: LineFollower | undefined;
    try {
      const { loader, kernel } = await makeTree(dir);
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        `interface = "br0"
data_dir = "${dir}/data"
[dhcp]
mode = "server"
range = ["10.81.0.100", "10.81.0.120"]
lease = "1h"
[http]
port = 8080
`,
      );
      serve = new LineFollower(
        lab.server.spawn([
          "deno",
          "run",
          ...DENO_NS_FLAGS,
          repoPath("main.ts"),
          "serve",
          "-c",
          `${dir}/config.toml`,
          "-l",
          `${dir}/tree`,
          "--log-format",
          "json",
        ]),
      );
      await serve.waitFor((l) => l.includes("DHCP listening"), 90_000, "DHCP listening");

      let ip = "";
      await t.step("udhcpc gets a lease", async () => {
        const hook = await hookScript(dir, "uc");
        const r = await client.exec(
          ["udhcpc", "-f", "-i", "eth0", "-q", "-n", "-t", "3", "-T", "2", "-s", hook],
          { check: false, timeoutMs: 60_000 },
        );
        assert.equal(r.code, 0, `udhcpc: ${r.stdout}${r.stderr}`);
        ip = (await readEnv(`${dir}/uc.bound.env`)).ip!;
        assert.match(ip, /^10\.81\.0\.1\d\d$/);
      });

      await t.step("the live stream is open before the client fetches", async () => {
        stream = new LineFollower(
          client.spawn(["curl", "-sSN", "--max-time", "120", `${BASE}/api/events/stream`]),
        );
        await stream.waitFor((l) => l.startsWith("retry:"), 30_000, "stream start");
      });

      await t.step("TFTP and HTTP fetches deliver the files", async () => {
        const out = `${dir}/got.kpxe`;
        const r = await client.exec(
          ["tftp", "-m", "binary", SERVER_IP, "-c", "get", "undionly.kpxe", out],
          { check: false, timeoutMs: 60_000 },
        );
        assert.equal(r.code, 0, `tftp: ${r.stdout}${r.stderr}`);
        assert.deepEqual(await Deno.readFile(out), loader);
        const script = await curl(client, `/boot.ipxe?mac=${mac}`);
        assert.match(script, /^#!ipxe/);
        const got = await client.exec(
          ["curl", "-sS", "--fail", "-o", `${dir}/vmlinuz`, `${BASE}/image/tiny/vmlinuz`],
          { check: false, timeoutMs: 30_000 },
        );
        assert.equal(got.code, 0, got.stderr);
        assert.deepEqual(await Deno.readFile(`${dir}/vmlinuz`), kernel);
        const missing = await client.exec(
          ["tftp", "-m", "binary", SERVER_IP, "-c", "get", "missing.efi", `${dir}/missing`],
          { check: false, timeoutMs: 60_000 },
        );
        assert.match(missing.stdout + missing.stderr, /not found/i);
      });

      await t.step("the stream delivered the boot as it happened", async () => {
        // /boot.ipxe?mac= of a machine with no OS yet answers the menu.
        for (const stage of ["tftp-done", "menu", "kernel", "tftp-failed"]) {
          const line = await stream!.waitFor(
            (l) => l.startsWith("data:") && l.includes(`"stage":"${stage}"`),
            30_000,
            `stream event ${stage}`,
          );
          const e = JSON.parse(line.slice(5)) as WatchEvent;
          assert.equal(e.mac, mac);
          assert.equal(e.ip, ip);
        }
        const ids = stream!.lines.filter((l) => l.startsWith("id: ")).map((l) =>
          Number(l.slice(4))
        );
        assert.ok(ids.length >= 3 && ids.every((id, i) => i === 0 || id > ids[i - 1]!), `${ids}`);
      });

      await t.step("/metrics shows the offer, the ack, the transfer and the requests", async () => {
        const text = await curl(client, "/metrics");
        const offers = 'astralboot_dhcp_replies_total{type="offer",client="other"}';
        const acks = 'astralboot_dhcp_replies_total{type="ack",client="other"}';
        assert.equal(sample(text, offers), 1, text);
        assert.equal(sample(text, acks), 1, text);
        assert.equal(sample(text, 'astralboot_dhcp_leases{state="bound"}'), 1, text);
        assert.equal(sample(text, 'astralboot_tftp_transfers_total{result="done"}'), 1, text);
        assert.equal(sample(text, 'astralboot_tftp_transfers_total{result="refused"}'), 1, text);
        assert.equal(sample(text, "astralboot_tftp_bytes_total"), loader.length, text);
        assert.equal(sample(text, "astralboot_tftp_transfer_duration_seconds_count"), 1, text);
        assert.equal(
          sample(text, 'astralboot_http_requests_total{route="script",status="200"}'),
          1,
          text,
        );
        assert.equal(
          sample(text, 'astralboot_http_requests_total{route="image",status="200"}'),
          1,
          text,
        );
        assert.equal(
          sample(text, 'astralboot_http_response_bytes_total{route="image"}'),
          kernel.length,
          text,
        );
        assert.equal(sample(text, "astralboot_event_stream_clients"), 1, text);
        assert.equal(sample(text, 'astralboot_http_connections_cut_total{reason="idle"}'), 0, text);
        assert.ok(sample(text, "astralboot_process_resident_memory_bytes")! > 1e6, text);
        assert.match(text, /^astralboot_build_info\{version="\d+\.\d+\.\d+",deno="[^"]+"\} 1$/m);
      });

      await t.step("/api/events and /api/overview show the machine's stages", async () => {
        const page = JSON.parse(await curl(client, `/api/events?mac=${mac}`)) as {
          events: WatchEvent[];
        };
        const stages = page.events.map((e) => e.stage);
        assert.deepEqual(stages, [
          "dhcp-offer",
          "dhcp-ack",
          "tftp-done",
          "menu",
          "kernel",
          "tftp-failed",
        ]);
        assert.ok(page.events.every((e) => e.mac === mac));
        assert.ok(page.events.slice(1).every((e) => e.ip === ip));
        assert.match(page.events[2]!.detail, /^undionly\.kpxe: 50000 bytes/);
        const o = JSON.parse(await curl(client, "/api/overview")) as Overview;
        const row = o.machines.find((m) => m.mac === mac);
        assert.equal(row?.ip, ip);
        assert.equal(row?.lease, "bound");
        assert.equal(row?.stage, "tftp-failed");
        assert.match(row?.detail ?? "", /^missing\.efi: /);
        assert.equal(o.headline.leases_bound, 1);
        assert.equal(o.headline.tftp_transfers, 1);
        assert.ok(o.headline.bytes_served >= loader.length + kernel.length);
        const leases = JSON.parse(await curl(client, "/api/leases")) as { mac: string }[];
        assert.ok(leases.some((l) => l.mac === mac));
      });

      await t.step("/ui answers with the dashboard", async () => {
        const html = await curl(client, "/ui");
        assert.match(html, /<title>Astral Boot<\/title>/);
        assert.match(await curl(client, "/ui/dashboard.js"), /EventSource/);
      });

      await t.step("a client that goes away is unsubscribed", async () => {
        await stream!.stop();
        const deadline = Date.now() + 20_000;
        let open: number | undefined;
        while (Date.now() < deadline) {
          open = sample(await curl(client, "/metrics"), "astralboot_event_stream_clients");
          if (open === 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(open, 0);
        stream = new LineFollower(
          client.spawn(["curl", "-sSN", "--max-time", "120", `${BASE}/api/events/stream`]),
        );
        await stream.waitFor((l) => l.startsWith("retry:"), 30_000, "second stream start");
      });

      await t.step("the connection watchdog counts the open stream's connection", async () => {
        let open = 0;
        for (let i = 0; i < 30 && open < 1; i++) {
          open = sample(await curl(client, "/metrics"), "astralboot_http_connections") ?? 0;
          if (open < 1) await new Promise((r) => setTimeout(r, 200));
        }
        assert.ok(open >= 1, `astralboot_http_connections ${open}`);
      });

      await t.step("SIGTERM stops the server while a stream is open", async () => {
        const t0 = Date.now();
        const status = await serve!.stop();
        const took = Date.now() - t0;
        serve = undefined;
        assert.equal(status.code, 0, `exit ${status.code} after ${took} ms`);
        // The stream ended with the server, not at curl's own time limit.
        const end = await stream!.finished(20_000);
        assert.ok(end.code !== 28, `curl exit ${end.code} (28: its time limit)`);
        stream = undefined;
      });
    } finally {
      if (stream) await stream.stop();
      if (serve) await serve.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
