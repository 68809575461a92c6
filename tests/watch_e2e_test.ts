/**
 * A boot you can watch, end to end: `main.ts serve` runs in a server namespace (bridge br0),
 * a client namespace gets a lease with udhcpc, fetches a file over TFTP (tftp-hpa) and over
 * HTTP (curl), and then /metrics, /api/events, /api/overview and the live event stream must
 * tell exactly that, to the admin with the token and to nobody else; a password hash in the
 * config shows up in no answer and no log line. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import { bridgeLab, LineFollower, serveConfig, startServe, udhcpcLease } from "./dhcp_harness.ts";
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

// The admin token, read from the data directory once the server made it.
let token = "";
const SENTINEL = "$6$sentinel$DO-NOT-SHOW-0123456789";

/** curl inside the client namespace, as the admin; its body, failing on a non-2xx answer. */
async function curl(ns: Netns, path: string): Promise<string> {
  const r = await ns.exec(
    [
      "curl",
      "-sS",
      "--fail",
      "--max-time",
      "20",
      "-H",
      `Authorization: Bearer ${token}`,
      BASE + path,
    ],
    { check: false, timeoutMs: 30_000 },
  );
  assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
  return r.stdout;
}

/** The HTTP status of `path` asked with `headers` from inside the client namespace. */
async function statusOf(
  ns: Netns,
  path: string,
  headers: string[] = [],
  method = "GET",
): Promise<number> {
  const r = await ns.exec(
    [
      "curl",
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-X",
      method,
      "--max-time",
      "20",
      ...headers.flatMap((h) => ["-H", h]),
      BASE + path,
    ],
    { check: false, timeoutMs: 30_000 },
  );
  return Number(r.stdout);
}

/** A live stream of the events, as the admin's dashboard opens it. */
function openStream(ns: Netns): LineFollower {
  return new LineFollower(
    ns.spawn([
      "curl",
      "-sSN",
      "--max-time",
      "120",
      "-H",
      `Authorization: Bearer ${token}`,
      `${BASE}/api/events/stream`,
    ]),
  );
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
        serveConfig(
          dir,
          `range = ["10.81.0.100", "10.81.0.120"]`,
          `
[[machine]]
mac = "52:54:00:5e:c2:e7"
hostname = "guarded"
vars = { password_hash = "${SENTINEL}", disk = "/dev/vda" }
`,
        ),
      );
      serve = await startServe(lab.server, dir);
      const tokenFile = `${dir}/data/api-token`;
      token = (await Deno.readTextFile(tokenFile)).trim();

      await t.step(
        "the admin token is made at first start, readable by its owner only",
        async () => {
          assert.match(token, /^[A-Za-z0-9_-]{32,}$/);
          assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
        },
      );

      let ip = "";
      await t.step("udhcpc gets a lease", async () => {
        ip = await udhcpcLease(client, dir, "uc") ?? "none";
        assert.match(ip, /^10\.81\.0\.1\d\d$/);
      });

      await t.step("the admin API refuses anyone without the token", async () => {
        const paths = [
          "/api/overview",
          "/api/events",
          "/api/events/stream",
          "/api/leases",
          "/api/machines",
          "/api/machines/52:54:00:5e:c2:e7",
        ];
        for (const path of paths) {
          assert.equal(await statusOf(client, path), 401, path);
          assert.equal(
            await statusOf(client, path, ["Authorization: Bearer not-the-token"]),
            401,
            path,
          );
          assert.equal(
            await statusOf(client, path, [
              `Authorization: Bearer ${token}`,
              "Origin: http://evil.example",
            ]),
            403,
            path,
          );
        }
        const reinstall = `/api/machines/52:54:00:5e:c2:e7/reinstall`;
        assert.equal(await statusOf(client, reinstall, [], "POST"), 401);
        // Metrics and the dashboard page itself are open: they hold no secrets.
        assert.equal(await statusOf(client, "/metrics"), 200);
        assert.equal(await statusOf(client, "/ui"), 200);
      });

      await t.step("the live stream is open before the client fetches", async () => {
        stream = openStream(client);
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
        assert.ok(sample(text, "process_resident_memory_bytes")! > 1e6, text);
        assert.ok(sample(text, "process_start_time_seconds")! > 1.7e9, text);
        assert.ok(sample(text, "astralboot_event_loop_lag_seconds")! >= 0, text);
        assert.equal(sample(text, 'astralboot_http_connections_cut_total{reason="idle"}'), 0, text);
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
        assert.match(await curl(client, "/ui/dashboard.js"), /\/api\/events\/stream/);
      });

      await t.step("the password hash is in no API answer and no log line", async () => {
        const machines = await curl(client, "/api/machines");
        const guarded = JSON.parse(await curl(client, "/api/machines/52:54:00:5e:c2:e7"));
        assert.deepEqual(guarded.var_names, ["disk", "password_hash"]);
        const answers = [
          machines,
          JSON.stringify(guarded),
          await curl(client, "/api/overview"),
          await curl(client, "/api/events?since=0"),
          await curl(client, "/metrics"),
        ];
        for (const text of answers) assert.ok(!text.includes("sentinel"), text);
        assert.ok(serve!.lines.length > 10);
        assert.ok(!serve!.output.includes("sentinel"), serve!.output);
        assert.ok(!serve!.output.includes(token), "the token is logged");
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
        stream = openStream(client);
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
