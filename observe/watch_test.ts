import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { openDatabase } from "../state/db.ts";
import { createHttpApp } from "../http/app.ts";
import { LocalStore } from "../content/local.ts";
import { createBootServices } from "../app/services.ts";
import type { DhcpEvent, DhcpReplyEvent, DhcpReplyKind } from "../boot/dhcp_responder.ts";
import type { TftpTransferEvent } from "../protocols/tftp/server.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { imageStage } from "./events.ts";
import { historyWriter } from "./history.ts";
import { BootWatch, countingLogger, type HttpEvent, LOOKUP_KEPT_MS } from "./watch.ts";
import { createLogger, memoryLogger, preparedLine } from "../log.ts";
import { callbackToken } from "../boot/callback_tokens.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));
const MAC = mustParseMac("b2:02:0c:fe:09:fd");
const IP = "10.81.0.100";

/** One sample's value from an exposition, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function reply(kind: DhcpReplyKind, mac: Mac = MAC, ip: string | null = IP): DhcpReplyEvent {
  return {
    kind: "reply",
    reply: kind,
    mac,
    ip,
    client: "other",
    arch: 0,
    bootfile: "undionly.kpxe",
  };
}

function tftp(result: TftpTransferEvent["result"], fields: Partial<TftpTransferEvent> = {}) {
  return {
    result,
    file: "undionly.kpxe",
    client: { address: IP, port: 37531 },
    bytes: 50000,
    blocks: 98,
    blksize: 512,
    windowsize: 1,
    ms: 68,
    retransmits: 0,
    ...fields,
  };
}

function http(path: string, fields: Partial<HttpEvent> = {}): HttpEvent {
  return {
    method: "GET",
    path,
    route: "script",
    status: 200,
    bytes: 465,
    ms: 4,
    client: IP,
    mac: null,
    step: null,
    ...fields,
  };
}

Deno.test("countingLogger forwards every line and counts warnings and errors", () => {
  const inner = memoryLogger();
  const counted: string[] = [];
  const log = countingLogger(inner, (level, subsystem) => counted.push(`${subsystem}/${level}`));
  log.debug("tftp", "a");
  log.info("tftp", "b", { x: 1 });
  log.warn("ipfs", "c");
  log.error("dhcp", "d");
  assert.deepEqual(inner.lines.map((l) => [l.level, l.subsystem, l.message]), [
    ["debug", "tftp", "a"],
    ["info", "tftp", "b"],
    ["warn", "ipfs", "c"],
    ["error", "dhcp", "d"],
  ]);
  assert.deepEqual(counted, ["ipfs/warn", "dhcp/error"]);
});

Deno.test("countingLogger passes prepared lines on and counts the warnings among them", () => {
  const lines: string[] = [];
  const counted: string[] = [];
  const inner = createLogger({ format: "journal", write: (l) => lines.push(l) });
  const log = countingLogger(inner, (level, subsystem) => counted.push(`${subsystem}/${level}`));
  assert.ok(log.prepare, "the inner logger's prepare is kept");
  preparedLine(log, "info", "http", "request", ["path"])(["/a"]);
  preparedLine(log, "warn", "tftp", "slow", ["file"])(["b"]);
  preparedLine(log, "warn", "tftp", "slow", ["file"])(["c"], "slower");
  assert.deepEqual(lines, [
    "<6>[http] request path=/a",
    "<4>[tftp] slow file=b",
    "<4>[tftp] slower file=c",
  ]);
  assert.deepEqual(counted, ["tftp/warn", "tftp/warn"]);
  // Over a logger without it: none, and preparedLine falls back to the level's method.
  assert.equal(countingLogger(memoryLogger(), () => {}).prepare, undefined);
});

Deno.test("refused DHCP requests count by reason; the pool's use is read at scrape time", () => {
  const watch = new BootWatch({ version: "0" });
  let held = 3;
  watch.pool = () => [
    { subnet: "10.0.0.0/24", held, size: 41 },
    { subnet: "10.9.0.0/24", held: 2, size: 10 },
  ];
  watch.dhcp({ kind: "ignored", mac: MAC, why: "pool full", refusal: "pool-exhausted" });
  watch.dhcp({ kind: "ignored", mac: MAC, why: "too fast", refusal: "rate-limited" });
  watch.dhcp({ kind: "ignored", mac: MAC, why: "too fast", refusal: "rate-limited" });
  watch.dhcp({ kind: "ignored", mac: MAC, why: "for another server" });
  watch.dhcp({ kind: "ignored", mac: MAC, why: "relay elsewhere", refusal: "no-subnet" });
  held = 40;
  const text = watch.metrics.render();
  const expect: [string, number][] = [
    ['astralboot_dhcp_refused_total{reason="pool-exhausted"}', 1],
    ['astralboot_dhcp_refused_total{reason="rate-limited"}', 2],
    ['astralboot_dhcp_refused_total{reason="known-only"}', 0],
    ['astralboot_dhcp_refused_total{reason="not-offered"}', 0],
    ['astralboot_dhcp_refused_total{reason="no-subnet"}', 1],
    ["astralboot_dhcp_ignored_total", 1],
    ['astralboot_dhcp_pool_addresses{subnet="10.0.0.0/24"}', 41],
    ['astralboot_dhcp_pool_held_addresses{subnet="10.0.0.0/24"}', 40],
    ['astralboot_dhcp_pool_addresses{subnet="10.9.0.0/24"}', 10],
    ['astralboot_dhcp_pool_held_addresses{subnet="10.9.0.0/24"}', 2],
  ];
  for (const [series, value] of expect) assert.equal(sample(text, series), value, series);
  // A refusal is no boot stage: nothing for the dashboard's timeline.
  assert.deepEqual(watch.events.since(0).events, []);
});

Deno.test("TFTP requests refused for a limit are counted, not fed live", () => {
  const watch = new BootWatch({ version: "0" });
  for (let i = 0; i < 50; i++) {
    watch.tftp(tftp("refused", { file: "x", bytes: 0, reason: "too many", limit: "per-client" }));
  }
  watch.tftp(tftp("refused", { file: "missing.efi", bytes: 0, reason: "file not found" }));
  assert.equal(
    sample(watch.metrics.render(), 'astralboot_tftp_transfers_total{result="refused"}'),
    51,
  );
  assert.deepEqual(watch.events.since(0).events.map((e) => e.detail), [
    "missing.efi: file not found",
  ]);
});

Deno.test("a DHCP, TFTP and HTTP boot becomes metrics and the machine's stages", () => {
  const watch = new BootWatch({ version: "9.9.9" });
  watch.dhcp(reply("offer"));
  watch.dhcp(reply("ack"));
  watch.tftp(tftp("done"));
  watch.http(http("/boot.ipxe?mac=b2-02-0c-fe-09-fd", {
    mac: MAC,
    step: { stage: "script", detail: "start tiny (configured)" },
  }));
  watch.http(http("/image/tiny/vmlinuz", {
    route: "image",
    bytes: 30000,
    step: { stage: "kernel", detail: "tiny/vmlinuz (30000 bytes)" },
  }));
  watch.http(http("/api/events/stream", { route: "watch", bytes: 0 }));
  watch.tftp(tftp("refused", { file: "missing.efi", bytes: 0, reason: "file not found" }));
  const text = watch.metrics.render();
  const expect: [string, number][] = [
    ['astralboot_dhcp_replies_total{type="offer",client="other"}', 1],
    ['astralboot_dhcp_replies_total{type="ack",client="other"}', 1],
    ['astralboot_tftp_transfers_total{result="done"}', 1],
    ['astralboot_tftp_transfers_total{result="refused"}', 1],
    ["astralboot_tftp_bytes_total", 50000],
    ["astralboot_tftp_retransmits_total", 0],
    ['astralboot_tftp_transfer_duration_seconds_bucket{le="0.05"}', 0],
    ['astralboot_tftp_transfer_duration_seconds_bucket{le="0.1"}', 1],
    ["astralboot_tftp_transfer_duration_seconds_sum", 0.068],
    ['astralboot_http_requests_total{route="watch",status="200"}', 1],
    ['astralboot_http_requests_total{route="script",status="200"}', 1],
    ['astralboot_http_requests_total{route="image",status="200"}', 1],
    ['astralboot_http_response_bytes_total{route="image"}', 30000],
    ['astralboot_boot_events_total{stage="tftp-done"}', 1],
  ];
  for (const [series, value] of expect) assert.equal(sample(text, series), value, series);
  assert.deepEqual(
    watch.events.since(0).events.map((e) => [e.mac, e.ip, e.stage, e.detail]),
    [
      [MAC, IP, "dhcp-offer", "undionly.kpxe (other, arch 0)"],
      [MAC, IP, "dhcp-ack", "undionly.kpxe (other, arch 0)"],
      [
        MAC,
        IP,
        "tftp-done",
        "undionly.kpxe: 50000 bytes in 68 ms (blksize 512, window 1, 0 retransmits)",
      ],
      [MAC, IP, "script", "start tiny (configured)"],
      [MAC, IP, "kernel", "tiny/vmlinuz (30000 bytes)"],
      [MAC, IP, "tftp-failed", "missing.efi: file not found"],
    ],
  );
  assert.equal(watch.events.current(MAC)?.stage, "tftp-failed");
  const h = watch.headline();
  assert.deepEqual(
    [h.dhcp_replies, h.tftp_transfers, h.tftp_bytes, h.http_bytes, h.bytes_served, h.events],
    [2, 1, 50000, 30465, 80465, 6],
  );
  assert.equal(h.leases_bound, null);
});

Deno.test("DNS queries are counted by result, from zero; no boot events", async (t) => {
  const watch = new BootWatch({ version: "0" });
  await t.step("every result is there at 0 before the first query", () => {
    const text = watch.metrics.render();
    for (const result of ["answer", "nxdomain", "forwarded", "refused", "malformed"]) {
      assert.equal(sample(text, `astralboot_dns_queries_total{result="${result}"}`), 0, result);
    }
  });
  await t.step("queries and drops", () => {
    const q = { name: "web-1.erf", type: "A", client: IP, transport: "udp" as const };
    watch.dns({ ...q, result: "answer" });
    watch.dns({ ...q, result: "answer" });
    watch.dns({ ...q, result: "forwarded", upstream: "10.0.0.53" });
    watch.dns({ ...q, result: "refused", reason: "outside the served subnet" });
    watch.dnsDropped({ reason: "malformed", from: { address: IP, port: 5353 }, transport: "tcp" });
    const text = watch.metrics.render();
    const want: [string, number][] = [["answer", 2], ["forwarded", 1], ["refused", 1], [
      "malformed",
      1,
    ], ["servfail", 0]];
    for (const [result, n] of want) {
      assert.equal(sample(text, `astralboot_dns_queries_total{result="${result}"}`), n, result);
    }
    assert.equal(watch.events.last, 0);
  });
});

Deno.test("DHCP events of each kind", async (t) => {
  const mac = mustParseMac("52:54:00:aa:bb:cc");
  const cases: [DhcpEvent, string | null, string | null][] = [
    [
      { ...reply("offer", mac), client: "pxe", arch: 7, bootfile: "snponly.efi" },
      'type="offer",client="pxe"',
      "dhcp-offer",
    ],
    [
      { ...reply("nak", mac, ""), ip: null, reason: "address 10.0.0.9 in-use" },
      'type="nak",client="other"',
      "dhcp-nak",
    ],
    [
      { ...reply("proxy-offer", mac), ip: null, client: "ipxe" },
      'type="proxy_offer",client="ipxe"',
      "proxy-offer",
    ],
    [
      { ...reply("proxy-ack", mac), ip: null, client: "ipxe" },
      'type="proxy_ack",client="ipxe"',
      "proxy-ack",
    ],
    [{ kind: "release", mac, ip: "10.0.0.9", ok: true }, null, "dhcp-release"],
    [{ kind: "decline", mac, ip: "10.0.0.9", ok: true }, null, "dhcp-decline"],
    [{ kind: "ignored", mac, why: "not a PXE client (proxy)" }, null, null],
  ];
  for (const [event, replySeries, stage] of cases) {
    await t.step(`${event.kind} ${event.kind === "reply" ? event.reply : ""}`, () => {
      const watch = new BootWatch({ version: "0" });
      watch.dhcp(event);
      const text = watch.metrics.render();
      if (replySeries) {
        assert.equal(sample(text, `astralboot_dhcp_replies_total{${replySeries}}`), 1);
      }
      if (event.kind === "release" || event.kind === "decline") {
        assert.equal(
          sample(text, `astralboot_dhcp_client_messages_total{type="${event.kind}"}`),
          1,
        );
      }
      if (event.kind === "ignored") assert.equal(sample(text, "astralboot_dhcp_ignored_total"), 1);
      assert.equal(watch.events.current(mac)?.stage ?? null, stage);
    });
  }
  await t.step("a NAK's detail is its reason", () => {
    const watch = new BootWatch({ version: "0" });
    watch.dhcp({ ...reply("nak", mac), ip: null, reason: "wrong network" });
    assert.equal(watch.events.current(mac)?.detail, "wrong network");
  });
});

Deno.test("an address no event named is resolved through macForIp, else kept by address", () => {
  const asked: string[] = [];
  const watch = new BootWatch({
    version: "0",
    macForIp: (ip) => (asked.push(ip), ip === "10.0.0.7" ? "52:54:00:00:00:07" : null),
  });
  watch.tftp(tftp("done", { client: { address: "10.0.0.7", port: 2000 }, retransmits: 2 }));
  watch.tftp(tftp("done", { client: { address: "::ffff:10.0.0.8", port: 2000 }, retransmits: 2 }));
  const events = watch.events.since(0).events;
  assert.deepEqual(events.map((e) => [e.mac, e.ip]), [
    ["52:54:00:00:00:07", "10.0.0.7"],
    [null, "10.0.0.8"],
  ]);
  assert.deepEqual(asked, ["10.0.0.7", "10.0.0.8"]);
  assert.equal(watch.events.current("10.0.0.8")?.stage, "tftp-done");
  assert.equal(sample(watch.metrics.render(), "astralboot_tftp_retransmits_total"), 4);
});

Deno.test("macForIp's answer for an address stands for a second, a MAC or none", () => {
  let now = 5_000;
  const asked: string[] = [];
  let owner: string | null = null;
  const watch = new BootWatch({
    version: "0",
    now: () => now,
    macForIp: (ip) => (asked.push(ip), owner),
  });
  const image = (client: string) =>
    http("/image/debian/linux", {
      route: "image",
      client,
      step: { stage: "kernel", detail: "debian/linux (5 bytes)" },
    });
  // A stranger fetching file after file: one look-up, not one per request.
  for (let i = 0; i < 5; i++) watch.http(image("10.0.0.9"));
  assert.deepEqual(asked, ["10.0.0.9"]);
  assert.equal(watch.events.current("10.0.0.9")?.stage, "kernel");
  // The registry learns the address: seen once the second is over, not before.
  owner = "52:54:00:00:00:09";
  now += LOOKUP_KEPT_MS - 1;
  watch.http(image("10.0.0.9"));
  assert.deepEqual(asked, ["10.0.0.9"]);
  now += 1;
  watch.http(image("10.0.0.9"));
  assert.deepEqual(asked, ["10.0.0.9", "10.0.0.9"]);
  assert.equal(watch.events.current("52:54:00:00:00:09")?.stage, "kernel");
  // A MAC found is kept the same way; a clock that stepped back asks again.
  watch.http(image("10.0.0.9"));
  assert.equal(asked.length, 2);
  now -= 10_000;
  watch.http(image("10.0.0.9"));
  assert.equal(asked.length, 3);
  // An ACK naming the address counts at once, whatever was kept.
  watch.dhcp(reply("ack", mustParseMac("52:54:00:00:00:0a"), "10.0.0.9"));
  watch.http(image("10.0.0.9"));
  assert.equal(asked.length, 3);
  assert.equal(watch.events.current("52:54:00:00:00:0a")?.stage, "kernel");
});

Deno.test("a failing macForIp is asked again on the next request", () => {
  let calls = 0;
  const watch = new BootWatch({
    version: "0",
    now: () => 0,
    macForIp: () => {
      calls++;
      throw new Error("database is locked");
    },
  });
  watch.tftp(tftp("done"));
  watch.tftp(tftp("done"));
  assert.equal(calls, 2);
  assert.equal(watch.events.current(IP)?.stage, "tftp-done");
});

Deno.test("only a boot script ties an address to a MAC, not a person's API query", () => {
  const watch = new BootWatch({ version: "0" });
  const kernel = { stage: "kernel" as const, detail: "debian/linux" };
  watch.http(http("/api/events?mac=52:54:00:00:00:01", {
    route: "watch",
    client: "10.0.0.200",
    mac: mustParseMac("52:54:00:00:00:01"),
  }));
  watch.http(http("/boot/debian/52-54-00-00-00-02", {
    client: "10.0.0.2",
    mac: mustParseMac("52:54:00:00:00:02"),
    step: { stage: "script", detail: "start debian" },
  }));
  watch.http(http("/image/debian/linux", { route: "image", client: "10.0.0.200", step: kernel }));
  watch.http(http("/image/debian/linux", { route: "image", client: "10.0.0.2", step: kernel }));
  assert.deepEqual(watch.events.since(0).events.map((e) => [e.stage, e.mac, e.ip]), [
    ["script", "52:54:00:00:00:02", "10.0.0.2"],
    ["kernel", null, "10.0.0.200"],
    ["kernel", "52:54:00:00:00:02", "10.0.0.2"],
  ]);
});

Deno.test("a GRUB config over TFTP is a script step, and ties its address to the MAC", () => {
  const watch = new BootWatch({ version: "0" });
  watch.script(MAC, IP, { stage: "script", detail: "start tiny (configured)" });
  // The kernel GRUB then reads over TFTP names only the address.
  watch.tftp(tftp("done", { file: "/image/tiny/vmlinuz" }));
  watch.script(null, "10.81.0.200", { stage: "menu", detail: "menu" });
  assert.deepEqual(watch.events.since(0).events.map((e) => [e.stage, e.mac, e.ip]), [
    ["script", MAC, IP],
    ["tftp-done", MAC, IP],
    ["menu", null, "10.81.0.200"],
  ]);
});

Deno.test("failed boot requests are http-error stages; HEAD and people's requests are none", () => {
  const watch = new BootWatch({ version: "0" });
  watch.http(http("/image/debian/missing.img", { route: "image", status: 404, bytes: 10 }));
  watch.http(http("/image/debian/linux", { route: "image", method: "HEAD", bytes: 0 }));
  watch.http(http("/api/machines/zz", { route: "api", status: 400 }));
  watch.http(http("/nothing", { route: "other", status: 404 }));
  assert.deepEqual(watch.events.since(0).events.map((e) => [e.stage, e.detail]), [
    ["http-error", "GET /image/debian/missing.img → 404"],
  ]);
  const text = watch.metrics.render();
  assert.equal(sample(text, 'astralboot_http_requests_total{route="image",status="200"}'), 1);
  assert.equal(sample(text, 'astralboot_http_requests_total{route="other",status="404"}'), 1);
});

Deno.test("IPFS events and warnings are counted", () => {
  const watch = new BootWatch({ version: "0" });
  watch.ipfs({ kind: "file-cached", path: "boot/x/vmlinuz", bytes: 4096, blocks: 3 });
  watch.ipfs({ kind: "file-failed", path: "boot/x/initrd", error: "gone" });
  watch.ipfs({ kind: "gateway-failure", gateway: "g", reason: "rejected" });
  watch.ipfs({ kind: "gateway-failure", gateway: "g", reason: "error" });
  watch.ipfs({ kind: "gateway-failure", gateway: "g", reason: "not-found" });
  const gc = { removedFiles: 2, removedBlocks: 1, evictedFiles: 2, maxBytes: 10_000 };
  watch.ipfs({ kind: "cache-gc", freedBytes: 3000, sizeBytes: 9000, ...gc });
  watch.ipfs({ kind: "file-cached", path: "boot/x/initrd", bytes: 500, blocks: 1 });
  watch.ipfs({ kind: "cache-gc", freedBytes: 700, sizeBytes: 8800, ...gc });
  watch.ipfs({ kind: "file-cached", path: "boot/x/initrd2", bytes: 100, blocks: 1 });
  const log = watch.logger(memoryLogger());
  log.warn("ipfs", "file download failed, nothing cached");
  log.warn("ipfs", "gateway failed");
  log.warn("tftp", "transfer failed");
  watch.tftp(tftp("failed", { bytes: 512, reason: "timeout" }));
  const text = watch.metrics.render();
  const expect: [string, number][] = [
    ['astralboot_ipfs_files_total{result="cached"}', 3],
    ["astralboot_ipfs_cache_evicted_bytes_total", 3700],
    ["astralboot_ipfs_cache_bytes", 8900],
    ["astralboot_ipfs_cache_max_bytes", 10_000],
    ['astralboot_ipfs_files_total{result="failed"}', 1],
    ["astralboot_ipfs_cached_bytes_total", 4696],
    ["astralboot_ipfs_blocks_verified_total", 5],
    ['astralboot_ipfs_gateway_failures_total{kind="rejected"}', 1],
    ['astralboot_ipfs_gateway_failures_total{kind="error"}', 1],
    ['astralboot_ipfs_gateway_failures_total{kind="not_found"}', 1],
    ['astralboot_log_messages_total{subsystem="ipfs",level="warn"}', 2],
    ['astralboot_log_messages_total{subsystem="tftp",level="warn"}', 1],
    ['astralboot_tftp_transfers_total{result="failed"}', 1],
    ["astralboot_tftp_bytes_total", 512],
  ];
  for (const [series, value] of expect) assert.equal(sample(text, series), value, series);
});

Deno.test("a boot through the real HTTP app becomes stages, metrics and history", async () => {
  const mac = mustParseMac("52:54:00:12:34:56");
  const ip = "10.0.0.50";
  const db = openDatabase(":memory:");
  const store = new LocalStore(TREE);
  const watch = new BootWatch({ version: "0" });
  const inner = memoryLogger();
  const logger = watch.logger(inner);
  const services = createBootServices({
    store,
    db,
    server: {
      serverIp: "10.0.0.1",
      baseUrl: "http://10.0.0.1",
      domain: "lab",
      templateConfig: { domain: "lab" },
    },
    addressBook: {
      leaseOf: (m) => m === mac ? ip : null,
      leaseAt: (a) => a === ip ? mac : null,
      reservationOf: () => null,
      reservedAt: () => null,
      neighbourAt: () => null,
    },
    logger,
  });
  watch.events.observe(historyWriter(services.history, logger));
  const app = createHttpApp({ ...services, store, watch, adminToken: "x".repeat(32), logger });
  // The installer's callbacks carry the token its config was rendered with.
  const token = () => callbackToken(services.secret, mac, services.registry.get(mac)!.install_gen);
  const steps: [string, string | (() => string), number][] = [
    ["GET", `/boot.ipxe?mac=${mac}`, 200],
    ["GET", `/choose/debian/server/${mac}`, 200],
    ["GET", "/image/debian/linux", 200],
    ["GET", "/image/debian/initrd.gz", 200],
    ["GET", "/image/debian/missing.img", 404],
    ["HEAD", "/image/debian/linux", 200],
    ["GET", "/config/debian/preseed", 200],
    ["GET", () => `/api/machines/${mac}/progress/${token()}?step=partition`, 200],
    ["POST", () => `/api/machines/${mac}/installed/${token()}`, 200],
    ["GET", `/boot.ipxe?mac=${mac}`, 200],
  ];
  for (const [method, url, status] of steps) {
    const path = typeof url === "string" ? url : url();
    const res = await app.request(path, { method }, { remoteAddr: { hostname: ip } });
    await res.arrayBuffer();
    assert.equal(res.status, status, `${method} ${path}`);
  }
  const size = async (f: string) => (await Deno.stat(`${TREE}/boot/debian/images/${f}`)).size;
  const events = watch.events.since(0).events;
  assert.deepEqual(events.map((e) => [e.stage, e.detail]), [
    ["menu", "menu"],
    ["chosen", "debian/server"],
    ["kernel", `debian/linux (${await size("linux")} bytes)`],
    ["initrd", `debian/initrd.gz (${await size("initrd.gz")} bytes)`],
    ["http-error", "GET /image/debian/missing.img → 404"],
    ["config", "debian/server preseed"],
    ["progress", "step=partition"],
    ["installed", "install finished"],
    ["local-boot", "local disk (installed debian)"],
  ]);
  // The image requests carried no MAC: the address the script was fetched from names it.
  assert.ok(events.every((e) => e.mac === mac && e.ip === ip), JSON.stringify(events));
  const text = watch.metrics.render();
  assert.equal(sample(text, 'astralboot_http_requests_total{route="script",status="200"}'), 3);
  assert.equal(sample(text, 'astralboot_http_requests_total{route="image",status="200"}'), 3);
  assert.equal(sample(text, 'astralboot_http_requests_total{route="image",status="404"}'), 1);
  assert.equal(sample(text, 'astralboot_http_requests_total{route="config",status="200"}'), 1);
  assert.equal(sample(text, 'astralboot_http_requests_total{route="api",status="200"}'), 2);
  // Everything the app logged reached the inner logger too.
  assert.equal(inner.lines.filter((l) => l.message === "request").length, steps.length);
  // The lasting history has the boot steps, not the file transfers.
  assert.deepEqual(services.history.lines(mac).map((l) => l.kind).reverse(), [
    "menu",
    "chosen",
    "config",
    "progress",
    "installed",
    "local-boot",
  ]);
});

Deno.test("a whole scrape is well-formed: HELP and TYPE once, before their samples", () => {
  const watch = new BootWatch({ version: "1.2.3" });
  watch.leases = () => [
    { ip: "10.0.0.5", mac: "52:54:00:00:00:05", state: "bound" },
    { ip: "10.0.0.6", mac: "52:54:00:00:00:06", state: "expired" },
  ];
  watch.dhcp(reply("ack"));
  watch.tftp(tftp("done"));
  watch.http(http("/boot.ipxe"));
  const text = watch.metrics.render();
  assert.ok(text.endsWith("\n"));
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  let family = "";
  for (const line of text.trimEnd().split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (help) {
      assert.ok(!helped.has(help[1]!), `HELP twice: ${line}`);
      helped.add(help[1]!);
      continue;
    }
    if (type) {
      assert.ok(!typed.has(type[1]!), `TYPE twice: ${line}`);
      assert.ok(helped.has(type[1]!), `TYPE before HELP: ${line}`);
      typed.set(type[1]!, type[2]!);
      family = type[1]!;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]\w*="(\\.|[^"\\])*",?)*\})? (\S+)$/.exec(
      line,
    );
    assert.ok(m, `not a sample line: ${line}`);
    const base = typed.get(family) === "histogram"
      ? m[1]!.replace(/_(bucket|sum|count)$/, "")
      : m[1]!;
    assert.equal(base, family, line);
    assert.ok(!Number.isNaN(Number(m[5]!.replace("+Inf", "Infinity"))), line);
  }
  assert.ok(typed.size >= 20);
  assert.equal(
    sample(text, 'astralboot_build_info{version="1.2.3",deno="' + Deno.version.deno + '"}'),
    1,
  );
  assert.equal(sample(text, 'astralboot_dhcp_leases{state="bound"}'), 1);
  assert.equal(sample(text, 'astralboot_dhcp_leases{state="expired"}'), 1);
  assert.equal(sample(text, 'astralboot_dhcp_leases{state="offered"}'), 0);
  assert.ok(sample(text, "process_resident_memory_bytes")! > 1e6);
  const start = sample(text, "process_start_time_seconds")!;
  assert.ok(Math.abs(start - performance.timeOrigin / 1000) < 1);
  assert.equal(watch.headline().leases_bound, 1);
  // Without a lease table (proxy mode) there is no lease series at all.
  watch.leases = undefined;
  assert.doesNotMatch(watch.metrics.render(), /^astralboot_dhcp_leases\{/m);
});

Deno.test("imageStage tells kernels and initrds by name", async (t) => {
  const cases: [string, string][] = [
    ["vmlinuz", "kernel"],
    ["linux", "kernel"],
    ["bzImage", "kernel"],
    ["kernel.efi", "kernel"],
    ["initrd.gz", "initrd"],
    ["sub/initramfs-6.1.img", "initrd"],
    ["root.cpio.xz", "initrd"],
    ["filesystem.squashfs", "image"],
  ];
  for (const [file, kind] of cases) {
    await t.step(file, () => assert.equal(imageStage(file), kind));
  }
});

Deno.test("HTTP connections cut are counted by reason, open ones as a gauge", () => {
  const watch = new BootWatch({ version: "test" });
  const before = watch.metrics.render();
  for (const reason of ["idle", "max_connections", "max_per_client"]) {
    assert.equal(sample(before, `astralboot_http_connections_cut_total{reason="${reason}"}`), 0);
  }
  watch.httpCut("idle");
  watch.httpCut("idle");
  watch.httpCut("max_per_client");
  watch.httpConnections(7);
  const text = watch.metrics.render();
  assert.equal(sample(text, 'astralboot_http_connections_cut_total{reason="idle"}'), 2);
  assert.equal(sample(text, 'astralboot_http_connections_cut_total{reason="max_per_client"}'), 1);
  assert.equal(sample(text, 'astralboot_http_connections_cut_total{reason="max_connections"}'), 0);
  assert.equal(sample(text, "astralboot_http_connections"), 7);
});
