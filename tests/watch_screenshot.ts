/**
 * Takes a screenshot of the dashboard for a person to look at (not part of the test suite):
 *
 *   deno run -A tests/watch_screenshot.ts OUT.png
 *
 * A throwaway namespace with loopback only holds a demo server (the watch app fed with the
 * records of three machines booting, one more event every second) and headless Chromium,
 * driven over its DevTools port, so the browser can reach nothing but the demo. Needs root
 * and `chromium`.
 *
 * @module
 */
import { Netns } from "./netns.ts";
import { repoPath } from "./dhcp_harness.ts";
import { createWatchApp } from "../http/watch_routes.ts";
import { BootWatch, type LogRecord } from "../observe/watch.ts";

const PORT = 8080;

function _rec(subsystem: string, message: string, fields: Record<string, unknown>): LogRecord {
  return { time: Date.now(), level: "info", subsystem, message, fields };
}

/** What three machines would log: one installed, one mid-install, one in the menu. */
function _demoRecords(): LogRecord[] {
  const boots: [string, string, string][] = [
    ["52:54:00:12:34:01", "10.0.0.101", "PXEClient"],
    ["52:54:00:12:34:02", "10.0.0.102", "iPXE"],
    ["52:54:00:12:34:03", "10.0.0.103", "PXEClient"],
  ];
  const out: LogRecord[] = [];
  for (const [mac, ip, client] of boots) {
    const dhcp = {
      mac,
      ip,
      arch: 0,
      client,
      bootfile: "undionly.kpxe",
      dest: "255.255.255.255:68",
    };
    out.push(_rec("dhcp", `DHCPOFFER ${ip} to ${mac}`, dhcp));
    out.push(_rec("dhcp", `DHCPACK ${ip} to ${mac}`, dhcp));
    out.push(_rec("tftp", "transfer done", {
      file: "undionly.kpxe",
      client: `${ip}:2070`,
      bytes: 70_012,
      blksize: 1468,
      windowsize: 4,
      ms: 41,
      retransmits: 0,
    }));
    const http = (path: string, bytes: number) =>
      out.push(
        _rec("http", "request", { method: "GET", path, status: 200, bytes, ms: 3, client: ip }),
      );
    http(`/boot.ipxe?mac=${mac}`, 465);
    if (mac.endsWith("03")) continue;
    http(`/choose/debian/server/${mac}`, 512);
    http("/image/debian/linux", 8_000_000);
    http("/image/debian/initrd.gz", 30_000_000);
    out.push(
      _rec("install", "config served", { mac, os: "debian", class: "server", config: "preseed" }),
    );
    if (mac.endsWith("02")) continue;
    out.push(_rec("install", "install finished: next boot from local disk", { mac, client: ip }));
  }
  return out;
}

function _serve(): void {
  const watch = new BootWatch({ version: "0.1.0" });
  const leases = [101, 102, 103].map((n) => ({
    ip: `10.0.0.${n}`,
    mac: `52:54:00:12:34:0${n - 100}`,
    state: "bound",
  }));
  watch.leases = () => leases;
  const machines = () => [
    {
      mac: "52:54:00:12:34:01",
      hostname: "web-1",
      os: "debian",
      class: "server",
      state: "installed",
    },
    {
      mac: "52:54:00:12:34:02",
      hostname: "web-2",
      os: "debian",
      class: "server",
      state: "installing",
    },
  ];
  for (const r of _demoRecords()) watch.observe(r);
  const app = createWatchApp({ watch, machines });
  let n = 0;
  setInterval(() => {
    watch.observe(_rec("install", "installer progress", {
      mac: "52:54:00:12:34:02",
      report: `step=${["partition", "base", "packages", "bootloader"][n++ % 4]}`,
    }));
  }, 1000);
  Deno.serve(
    { hostname: "127.0.0.1", port: PORT, onListen: () => console.log("ready") },
    app.fetch,
  );
}

/** Runs inside the namespace: demo server, Chromium, and a screenshot over DevTools. */
async function _inside(out: string): Promise<void> {
  _serve();
  const profile = await Deno.makeTempDir({ prefix: "abw-chromium-" });
  const browser = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--window-size=1280,900",
      "--remote-debugging-port=9222",
      "about:blank",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let pages: { type: string; webSocketDebuggerUrl: string }[] = [];
    for (let i = 0; i < 100 && !pages.some((p) => p.type === "page"); i++) {
      await new Promise((r) => setTimeout(r, 200));
      pages = await fetch("http://127.0.0.1:9222/json/list").then((r) => r.json()).catch(() => []);
    }
    const page = pages.find((p) => p.type === "page");
    if (!page) throw new Error("Chromium has no page");
    const ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise((r) => ws.onopen = r);
    let id = 0;
    const waiting = new Map<number, (v: Record<string, unknown>) => void>();
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      waiting.get(msg.id)?.(msg.result);
    };
    const call = (method: string, params = {}) =>
      new Promise<Record<string, unknown>>((resolve) => {
        waiting.set(++id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    await call("Page.navigate", { url: `http://127.0.0.1:${PORT}/ui` });
    // Overview fetch, event history and a few live events.
    await new Promise((r) => setTimeout(r, 4000));
    const shot = await call("Page.captureScreenshot", { format: "png" });
    const bin = atob(shot.data as string);
    await Deno.writeFile(out, Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    console.log(`${bin.length} bytes written to ${out}`);
    ws.close();
  } finally {
    browser.kill("SIGKILL");
    await browser.status;
    await Deno.remove(profile, { recursive: true });
  }
  Deno.exit(0);
}

async function _main(out: string): Promise<void> {
  await using ns = await Netns.create("abw");
  const r = await ns.exec(
    ["deno", "run", "-A", repoPath("tests/watch_screenshot.ts"), "--inside", out],
    { check: false, timeoutMs: 120_000 },
  );
  console.log(r.stdout + r.stderr);
}

if (import.meta.main) {
  if (Deno.args[0] === "--inside") await _inside(Deno.args[1]!);
  else await _main(Deno.args[0] ?? "/tmp/astralboot-ui.png");
}
