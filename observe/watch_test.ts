import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createApiApp } from "../http/api_routes.ts";
import { openDatabase } from "../state/db.ts";
import { createHttpApp } from "../http/app.ts";
import { Installers } from "../boot/installers.ts";
import { LocalStore } from "../content/local.ts";
import { MachineRegistry } from "../state/machine_registry.ts";
import { MachineStore } from "../state/machines.ts";
import { OsCatalog } from "../boot/catalog.ts";
import { TemplateRenderer } from "../boot/templates.ts";
import {
  BootWatch,
  clientAddress,
  dhcpClientLabel,
  eventOfRecord,
  httpRouteClass,
  imageStage,
  type LogRecord,
  observeLogger,
} from "./watch.ts";
import { type Level, memoryLogger } from "../log.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));

/**
 * Captured from `main.ts serve --log-format json` in tests/watch_e2e_test.ts: udhcpc takes a
 * lease, tftp-hpa fetches undionly.kpxe and then a missing file, curl fetches the script and
 * a kernel.
 */
const CAPTURED = `
{"time":"2026-11-25T19:28:42.642Z","level":"info","subsystem":"dhcp","msg":"DHCP listening","interface":"br0","address":"10.81.0.1","mode":"server","range":"10.81.0.100-10.81.0.120"}
{"time":"2026-11-25T19:28:42.957Z","level":"info","subsystem":"dhcp","msg":"DHCPOFFER 10.81.0.100 to b2:02:0c:fe:09:fd","mac":"b2:02:0c:fe:09:fd","ip":"10.81.0.100","arch":0,"client":"other","bootfile":"undionly.kpxe","dest":"255.255.255.255:68"}
{"time":"2026-11-25T19:28:42.986Z","level":"info","subsystem":"dhcp","msg":"DHCPACK 10.81.0.100 to b2:02:0c:fe:09:fd","mac":"b2:02:0c:fe:09:fd","ip":"10.81.0.100","arch":0,"client":"other","bootfile":"undionly.kpxe","dest":"255.255.255.255:68"}
{"time":"2026-11-25T19:28:43.188Z","level":"info","subsystem":"http","msg":"request","method":"GET","path":"/api/events/stream","status":200,"bytes":0,"ms":10.6,"client":"10.81.0.100"}
{"time":"2026-11-25T19:28:43.285Z","level":"info","subsystem":"tftp","msg":"transfer done","file":"undionly.kpxe","client":"10.81.0.100:37531","mode":"octet","bytes":50000,"blocks":98,"blksize":512,"windowsize":1,"ms":68,"mbps":0.74,"retransmits":0}
{"time":"2026-11-25T19:28:43.375Z","level":"info","subsystem":"http","msg":"request","method":"GET","path":"/boot.ipxe?mac=b2:02:0c:fe:09:fd","status":200,"bytes":465,"ms":46.5,"client":"10.81.0.100"}
{"time":"2026-11-25T19:28:43.416Z","level":"info","subsystem":"http","msg":"request","method":"GET","path":"/image/tiny/vmlinuz","status":200,"bytes":30000,"ms":4.2,"client":"10.81.0.100"}
{"time":"2026-11-25T19:28:43.435Z","level":"info","subsystem":"tftp","msg":"request refused","file":"missing.efi","client":"10.81.0.100:36341","mode":"octet","code":1,"reason":"file not found"}
{"time":"2026-11-25T19:28:43.509Z","level":"info","subsystem":"http","msg":"request","method":"GET","path":"/api/events?mac=b2:02:0c:fe:09:fd","status":200,"bytes":0,"ms":1.6,"client":"10.81.0.100"}
`;
const CAPTURED_MAC = "b2:02:0c:fe:09:fd";

/** A JSON log line back into the record the observer saw. */
function record(line: string): LogRecord {
  const { time, level, subsystem, msg, ...fields } = JSON.parse(line);
  return { time: Date.parse(time), level, subsystem, message: msg, fields };
}

function rec(subsystem: string, message: string, fields = {}, level: Level = "info"): LogRecord {
  return { time: Date.now(), level, subsystem, message, fields };
}

/** One sample's value from an exposition, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test("observeLogger forwards every level unchanged and hands each record over", async (t) => {
  for (const level of ["debug", "info", "warn", "error"] as const) {
    await t.step(level, () => {
      const inner = memoryLogger();
      const seen: LogRecord[] = [];
      const log = observeLogger(inner, (r) => seen.push(r));
      const before = Date.now();
      log[level]("tftp", "transfer done", { bytes: 5 });
      assert.deepEqual(inner.lines, [
        { level, subsystem: "tftp", message: "transfer done", fields: { bytes: 5 } },
      ]);
      assert.equal(seen.length, 1);
      assert.deepEqual({ ...seen[0], time: 0 }, {
        time: 0,
        level,
        subsystem: "tftp",
        message: "transfer done",
        fields: { bytes: 5 },
      });
      assert.ok(seen[0]!.time >= before && seen[0]!.time <= Date.now());
    });
  }
});

Deno.test("an observer that throws is logged at debug and never reaches the caller", () => {
  const inner = memoryLogger();
  const log = observeLogger(inner, () => {
    throw new Error("boom");
  });
  log.info("dhcp", "DHCPOFFER 10.0.0.5 to 52:54:00:00:00:01");
  assert.equal(inner.lines.length, 2);
  assert.equal(inner.lines[1]!.level, "debug");
  assert.equal(inner.lines[1]!.message, "observer failed");
  assert.equal((inner.lines[1]!.fields.error as Error).message, "boom");
});

Deno.test("captured server records become metrics and the machine's stages", () => {
  const watch = new BootWatch({ version: "9.9.9" });
  for (const line of CAPTURED.trim().split("\n")) watch.observe(record(line));
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
    ['astralboot_http_requests_total{route="watch",status="200"}', 2],
    ['astralboot_http_requests_total{route="script",status="200"}', 1],
    ['astralboot_http_requests_total{route="image",status="200"}', 1],
    ['astralboot_http_response_bytes_total{route="image"}', 30000],
    ['astralboot_boot_events_total{stage="tftp-done"}', 1],
  ];
  for (const [series, value] of expect) assert.equal(sample(text, series), value, series);
  const events = watch.events.since(0).events;
  assert.deepEqual(
    events.map((e) => [e.mac, e.ip, e.stage, e.detail]),
    [
      [CAPTURED_MAC, "10.81.0.100", "dhcp-offer", "undionly.kpxe (other, arch 0)"],
      [CAPTURED_MAC, "10.81.0.100", "dhcp-ack", "undionly.kpxe (other, arch 0)"],
      [
        CAPTURED_MAC,
        "10.81.0.100",
        "tftp-done",
        "undionly.kpxe: 50000 bytes in 68 ms (blksize 512, window 1, 0 retransmits)",
      ],
      [CAPTURED_MAC, "10.81.0.100", "script", "boot.ipxe"],
      [CAPTURED_MAC, "10.81.0.100", "kernel", "tiny/vmlinuz (30000 bytes)"],
      [CAPTURED_MAC, "10.81.0.100", "tftp-failed", "missing.efi: file not found"],
    ],
  );
  assert.equal(events[0]!.time, Date.parse("2026-11-25T19:28:42.957Z"));
  assert.equal(watch.events.current(CAPTURED_MAC)?.stage, "tftp-failed");
  const h = watch.headline();
  assert.deepEqual(
    [h.dhcp_replies, h.tftp_transfers, h.tftp_bytes, h.http_bytes, h.bytes_served, h.events],
    [2, 1, 50000, 30465, 80465, 6],
  );
  assert.equal(h.leases_bound, null);
});

Deno.test("DHCP records of each kind (as protocols/dhcp/server.ts logs them)", async (t) => {
  const mac = "52:54:00:aa:bb:cc";
  const boot = { arch: 7, bootfile: "snponly.efi", dest: "255.255.255.255:68" };
  const cases: { r: LogRecord; series: string; stage: string | null; detail?: string }[] = [
    {
      r: rec("dhcp", `DHCPOFFER 10.0.0.9 to ${mac}`, {
        mac,
        ip: "10.0.0.9",
        ...boot,
        client: "PXEClient",
      }),
      series: 'astralboot_dhcp_replies_total{type="offer",client="pxe"}',
      stage: "dhcp-offer",
      detail: "snponly.efi (PXEClient, arch 7)",
    },
    {
      r: rec("dhcp", `DHCPACK 10.0.0.9 to ${mac}`, {
        mac,
        ip: "10.0.0.9",
        arch: 0,
        client: "iPXE",
        bootfile: "http://10.0.0.1/boot.ipxe",
      }),
      series: 'astralboot_dhcp_replies_total{type="ack",client="ipxe"}',
      stage: "dhcp-ack",
    },
    {
      r: rec("dhcp", `ProxyDHCPOFFER to ${mac}`, { mac, ...boot, client: "PXEClient" }),
      series: 'astralboot_dhcp_replies_total{type="proxy_offer",client="pxe"}',
      stage: "proxy-offer",
      detail: "snponly.efi (PXEClient, arch 7)",
    },
    {
      r: rec("dhcp", `ProxyDHCPACK to ${mac}`, { mac, ...boot, client: "HTTPClient" }),
      series: 'astralboot_dhcp_replies_total{type="proxy_ack",client="http"}',
      stage: "proxy-ack",
    },
    {
      r: rec("dhcp", `DHCPNAK to ${mac}`, { mac, reason: "in-use", dest: "255.255.255.255:68" }),
      series: 'astralboot_dhcp_replies_total{type="nak",client="other"}',
      stage: "dhcp-nak",
      detail: "in-use",
    },
    {
      r: rec("dhcp", "DHCPRELEASE", { mac, ip: "10.0.0.9", released: true, port: 67 }),
      series: 'astralboot_dhcp_client_messages_total{type="release"}',
      stage: "dhcp-release",
      detail: "10.0.0.9",
    },
    {
      r: rec("dhcp", "DHCPDECLINE", { mac, ip: "10.0.0.9", quarantined: true, port: 67 }),
      series: 'astralboot_dhcp_client_messages_total{type="decline"}',
      stage: "dhcp-decline",
    },
    {
      r: rec("dhcp", "ignored", { mac, why: "client chose server 10.0.0.2", port: 67 }, "debug"),
      series: "astralboot_dhcp_ignored_total",
      stage: null,
    },
  ];
  for (const c of cases) {
    await t.step(c.r.message, () => {
      const watch = new BootWatch({ version: "0" });
      watch.observe(c.r);
      assert.equal(sample(watch.metrics.render(), c.series), 1);
      const events = watch.events.since(0).events;
      assert.deepEqual(events.map((e) => e.stage), c.stage ? [c.stage] : []);
      if (c.stage) assert.equal(events[0]!.mac, mac);
      if (c.detail) assert.equal(events[0]!.detail, c.detail);
    });
  }
});

Deno.test("a boot through the real HTTP app and machine API becomes stages and metrics", async () => {
  const mac = "52:54:00:12:34:56";
  const ip = "10.0.0.50";
  const db = openDatabase(":memory:");
  const store = new LocalStore(TREE);
  const catalog = new OsCatalog(store);
  const machines = new MachineStore(db);
  const registry = new MachineRegistry(db, { store: machines });
  const watch = new BootWatch({ version: "0" });
  const inner = memoryLogger();
  const logger = watch.logger(inner);
  const settings = {
    serverIp: "10.0.0.1",
    baseUrl: "http://10.0.0.1",
    domain: "lab",
    templateConfig: { domain: "lab" },
  };
  const app = createHttpApp({
    store,
    catalog,
    templates: new TemplateRenderer({ store }),
    machines,
    config: settings,
    installers: new Installers({ registry, catalog, settings, logger }),
    api: createApiApp({ registry, logger }),
    logger,
  });
  const steps: [string, string, number][] = [
    ["GET", `/boot.ipxe?mac=${mac}`, 200],
    ["GET", `/choose/debian/server/${mac}`, 200],
    ["GET", "/image/debian/linux", 200],
    ["GET", "/image/debian/initrd.gz", 200],
    ["GET", "/image/debian/missing.img", 404],
    ["HEAD", "/image/debian/linux", 200],
    ["GET", "/config/debian/preseed", 200],
    ["GET", `/api/machines/${mac}/progress?step=partition`, 200],
    ["POST", `/api/machines/${mac}/installed`, 200],
    ["GET", `/boot.ipxe?mac=${mac}`, 200],
  ];
  for (const [method, path, status] of steps) {
    const res = await app.request(path, { method }, { remoteAddr: { hostname: ip } });
    await res.arrayBuffer();
    assert.equal(res.status, status, `${method} ${path}`);
  }
  const events = watch.events.since(0).events;
  assert.deepEqual(events.map((e) => [e.stage, e.detail]), [
    ["script", "boot.ipxe"],
    ["chosen", "debian/server"],
    [
      "kernel",
      `debian/linux (${(await Deno.stat(`${TREE}/boot/debian/images/linux`)).size} bytes)`,
    ],
    [
      "initrd",
      `debian/initrd.gz (${(await Deno.stat(`${TREE}/boot/debian/images/initrd.gz`)).size} bytes)`,
    ],
    ["http-error", "GET /image/debian/missing.img → 404"],
    ["config", "debian/server preseed"],
    ["progress", "step=partition"],
    ["installed", "install finished: next boot from local disk"],
    // The second /boot.ipxe: the handler's own record, not a second "script".
    ["local-boot", "installed: booting the local disk"],
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
});

Deno.test("an address no DHCPACK named is resolved through macForIp, else kept by address", () => {
  const asked: string[] = [];
  const watch = new BootWatch({
    version: "0",
    macForIp: (ip) => (asked.push(ip), ip === "10.0.0.7" ? "52-54-00-00-00-07" : null),
  });
  const done = (client: string) =>
    rec("tftp", "transfer done", { file: "ipxe.efi", client, bytes: 1, ms: 1, retransmits: 2 });
  watch.observe(done("10.0.0.7:2000"));
  watch.observe(done("10.0.0.8:2000"));
  const events = watch.events.since(0).events;
  assert.deepEqual(events.map((e) => [e.mac, e.ip]), [
    ["52:54:00:00:00:07", "10.0.0.7"],
    [null, "10.0.0.8"],
  ]);
  assert.deepEqual(asked, ["10.0.0.7", "10.0.0.8"]);
  assert.equal(watch.events.current("10.0.0.8")?.stage, "tftp-done");
  assert.equal(sample(watch.metrics.render(), "astralboot_tftp_retransmits_total"), 4);
});

Deno.test("only a boot script ties an address to a MAC, not a person's API query", () => {
  const watch = new BootWatch({ version: "0" });
  const get = (path: string, client: string) =>
    rec("http", "request", { method: "GET", path, status: 200, bytes: 9, ms: 1, client });
  watch.observe(get("/api/events?mac=52:54:00:00:00:01", "10.0.0.200"));
  watch.observe(get("/boot/debian/52-54-00-00-00-02", "10.0.0.2"));
  watch.observe(get("/image/debian/linux", "10.0.0.200"));
  watch.observe(get("/image/debian/linux", "10.0.0.2"));
  assert.deepEqual(watch.events.since(0).events.map((e) => [e.stage, e.mac, e.ip]), [
    ["script", "52:54:00:00:00:02", "10.0.0.2"],
    ["kernel", null, "10.0.0.200"],
    ["kernel", "52:54:00:00:00:02", "10.0.0.2"],
  ]);
});

Deno.test("IPFS and warning records are counted (as ipfs/ logs them)", () => {
  const watch = new BootWatch({ version: "0" });
  const cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
  const records = [
    rec("ipfs", "file cached", { path: "boot/x/vmlinuz", cid, bytes: 4096, blocks: 3, car: 3 }),
    rec("ipfs", "file download failed, nothing cached", { path: "boot/x/initrd", cid }, "warn"),
    rec("ipfs", "gateway failed", {
      gateway: "http://127.0.0.1:8080",
      cid,
      error: `Block ${cid} failed verification: its 5 bytes hash to something else`,
    }, "warn"),
    rec("ipfs", "gateway failed", { gateway: "g", cid, error: "HTTP 502" }, "debug"),
    rec("ipfs", "gateway does not have block", { gateway: "g", cid }, "debug"),
    rec("tftp", "transfer failed", {
      file: "f",
      client: "10.0.0.9:3",
      bytes: 512,
      reason: "timeout",
    }, "warn"),
  ];
  for (const r of records) watch.observe(r);
  const text = watch.metrics.render();
  const expect: [string, number][] = [
    ['astralboot_ipfs_files_total{result="cached"}', 1],
    ['astralboot_ipfs_files_total{result="failed"}', 1],
    ["astralboot_ipfs_cached_bytes_total", 4096],
    ["astralboot_ipfs_blocks_verified_total", 3],
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

Deno.test("a whole scrape is well-formed: HELP and TYPE once, before their samples", () => {
  const watch = new BootWatch({ version: "1.2.3" });
  watch.leases = () => [
    { ip: "10.0.0.5", mac: "52:54:00:00:00:05", state: "bound" },
    { ip: "10.0.0.6", mac: "52:54:00:00:00:06", state: "expired" },
  ];
  for (const line of CAPTURED.trim().split("\n")) watch.observe(record(line));
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
  assert.ok(sample(text, "astralboot_process_resident_memory_bytes")! > 1e6);
  assert.ok(sample(text, "astralboot_uptime_seconds")! > 0);
  const start = sample(text, "astralboot_process_start_time_seconds")!;
  assert.ok(Math.abs(start - performance.timeOrigin / 1000) < 1);
  assert.equal(watch.headline().leases_bound, 1);
  // Without a lease table (proxy mode) there is no lease series at all.
  watch.leases = undefined;
  assert.doesNotMatch(watch.metrics.render(), /^astralboot_dhcp_leases\{/m);
});

Deno.test("small classifiers: route class, image kind, client address, DHCP client", async (t) => {
  const routes: [string, string][] = [
    ["/boot.ipxe?mac=52:54:00:00:00:01", "script"],
    ["/menu.ipxe", "script"],
    ["/choose", "script"],
    ["/choose/debian/52:54:00:00:00:01", "script"],
    ["/boot/debian/525400000001", "script"],
    ["/image/debian/linux", "image"],
    ["/tftp/snponly.efi", "loader"],
    ["/config/debian/preseed", "config"],
    ["/action/debian/preseed", "config"],
    ["/api/machines", "api"],
    ["/api/events?since=3", "watch"],
    ["/api/events/stream", "watch"],
    ["/api/leases", "watch"],
    ["/api/overview", "watch"],
    ["/metrics", "watch"],
    ["/ui", "watch"],
    ["/ui/dashboard.js", "watch"],
    ["/uix", "other"],
    ["/favicon.ico", "other"],
  ];
  for (const [path, route] of routes) {
    await t.step(`route ${path}`, () => assert.equal(httpRouteClass(path), route));
  }
  const images: [string, string][] = [
    ["vmlinuz", "kernel"],
    ["vmlinuz-6.1.0-13-amd64", "kernel"],
    ["linux", "kernel"],
    ["bzImage", "kernel"],
    ["kernel.efi", "kernel"],
    ["initrd.gz", "initrd"],
    ["initrd.img", "initrd"],
    ["casper/initrd", "initrd"],
    ["initramfs-6.1.img", "initrd"],
    ["rootfs.cpio.gz", "initrd"],
    ["filesystem.squashfs", "image"],
    ["flatcar_production_pxe_image.cpio.gz", "initrd"],
  ];
  for (const [file, kind] of images) {
    await t.step(`image ${file}`, () => assert.equal(imageStage(file), kind));
  }
  const clients: [unknown, string | null][] = [
    ["10.0.0.5:2070", "10.0.0.5"],
    ["10.0.0.5", "10.0.0.5"],
    ["::ffff:10.0.0.5", "10.0.0.5"],
    ["[fe80::1]:69", "fe80::1"],
    ["-", null],
    ["", null],
    [undefined, null],
    [42, null],
  ];
  for (const [client, ip] of clients) {
    await t.step(`client ${String(client)}`, () => assert.equal(clientAddress(client), ip));
  }
  const kinds: [unknown, string][] = [
    ["iPXE", "ipxe"],
    ["PXEClient", "pxe"],
    ["HTTPClient", "http"],
    ["other", "other"],
    [undefined, "other"],
  ];
  for (const [client, label] of kinds) {
    await t.step(
      `dhcp client ${String(client)}`,
      () => assert.equal(dhcpClientLabel(client), label),
    );
  }
});

Deno.test("records that are no boot step make no event", async (t) => {
  const cases: LogRecord[] = [
    rec("dhcp", "DHCP listening", { interface: "br0" }),
    rec("dhcp", "DHCPOFFER 10.0.0.9 to nonsense", { mac: "nonsense", ip: "10.0.0.9" }),
    rec("tftp", "listening", { address: "10.0.0.1", port: 69 }),
    rec("http", "request", { method: "GET", path: "/metrics", status: 200, client: "10.0.0.9" }),
    rec("http", "request", { method: "GET", path: "/api/machines", status: 200, client: "x" }),
    rec("http", "request", { method: "HEAD", path: "/image/a/linux", status: 200, client: "x" }),
    rec("http", "request", { method: "GET", path: "/favicon.ico", status: 404, client: "x" }),
    rec("http", "request", { method: "GET", path: "/config/a/preseed", status: 200, client: "x" }),
    rec("http", "sticky choice", { mac: "52:54:00:00:00:01", os: "debian" }),
    rec("install", "config served", { os: "debian" }),
    rec("main", "stopping"),
  ];
  for (const r of cases) {
    await t.step(`${r.subsystem} ${r.message} ${String(r.fields.path ?? "")}`, () => {
      assert.equal(eventOfRecord(r), null);
    });
  }
});
