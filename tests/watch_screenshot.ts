/**
 * Takes a screenshot of the dashboard for a person to look at (not part of the test suite):
 *
 *   deno run -A tests/watch_screenshot.ts OUT.png
 *
 * A throwaway namespace with loopback only holds a demo server (the watch app fed with the
 * records of three machines booting, one more event every second) and headless Chromium
 * (tests/chromium.ts), so the browser can reach nothing but the demo. Needs root and
 * `chromium`.
 *
 * @module
 */
import { Netns } from "./netns.ts";
import { spawnDeno } from "./dhcp_harness.ts";
import { Chromium } from "./chromium.ts";
import { watchRoutes } from "../http/watch_routes.ts";
import { BootWatch, type HttpEvent } from "../observe/watch.ts";
import type { BootStage } from "../observe/events.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";

const PORT = 8080;
const DEMO_TOKEN = "demo-token-0123456789abcdef";

function request(path: string, ip: string, mac: Mac | null, stage: BootStage, detail: string) {
  const route = path.startsWith("/image/") ? "image" : path.startsWith("/api/") ? "api" : "script";
  const event: HttpEvent = {
    method: "GET",
    path,
    route,
    status: 200,
    bytes: 512,
    ms: 3,
    client: ip,
    mac,
    step: { stage, detail },
  };
  return event;
}

/** What three machines would do: one installed, one mid-install, one in the menu. */
function feedDemo(watch: BootWatch): void {
  const boots: [string, string, "pxe" | "ipxe"][] = [
    ["52:54:00:12:34:01", "10.0.0.101", "pxe"],
    ["52:54:00:12:34:02", "10.0.0.102", "ipxe"],
    ["52:54:00:12:34:03", "10.0.0.103", "pxe"],
  ];
  for (const [text, ip, client] of boots) {
    const mac = mustParseMac(text);
    const dhcp = { kind: "reply", mac, ip, arch: 0, client, bootfile: "undionly.kpxe" } as const;
    watch.dhcp({ ...dhcp, reply: "offer" });
    watch.dhcp({ ...dhcp, reply: "ack" });
    watch.tftp({
      result: "done",
      file: "undionly.kpxe",
      client: { address: ip, port: 2070 },
      bytes: 70_012,
      blocks: 48,
      blksize: 1468,
      windowsize: 4,
      ms: 41,
      retransmits: 0,
    });
    if (text.endsWith("03")) {
      watch.http(request(`/boot.ipxe?mac=${text}`, ip, mac, "menu", "menu"));
      continue;
    }
    watch.http(request(`/choose/debian/server/${text}`, ip, mac, "chosen", "debian/server"));
    watch.http(request("/image/debian/linux", ip, null, "kernel", "debian/linux (8000000 bytes)"));
    watch.http(
      request("/image/debian/initrd.gz", ip, null, "initrd", "debian/initrd.gz (30000000 bytes)"),
    );
    watch.http(request("/config/debian/preseed", ip, mac, "config", "debian/server preseed"));
    if (text.endsWith("02")) continue;
    watch.http(
      request(`/api/machines/${text}/installed`, ip, mac, "installed", "install finished"),
    );
  }
}

function serveDemo(): void {
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
  feedDemo(watch);
  // The page gets this token from its address: /ui#token=… (see takeScreenshot).
  const app = watchRoutes({ watch, machines, adminToken: DEMO_TOKEN });
  let n = 0;
  const busy = mustParseMac("52:54:00:12:34:02");
  setInterval(() => {
    const step = `step=${["partition", "base", "packages", "bootloader"][n++ % 4]}`;
    watch.http(request(`/api/machines/${busy}/progress`, "10.0.0.102", busy, "progress", step));
  }, 1000);
  Deno.serve(
    { hostname: "127.0.0.1", port: PORT, onListen: () => console.log("ready") },
    app.fetch,
  );
}

async function takeScreenshot(out: string): Promise<void> {
  await using ns = await Netns.create("abw");
  const demo = spawnDeno(ns, "tests/watch_screenshot.ts", ["--serve"]);
  try {
    await demo.waitFor((l) => l === "ready", 30_000, "demo server");
    await using browser = await Chromium.launch(ns, 1280, 900);
    await browser.call("Page.navigate", { url: `http://127.0.0.1:${PORT}/ui#token=${DEMO_TOKEN}` });
    // Overview fetch, event history and a few live events.
    await new Promise((r) => setTimeout(r, 4000));
    const shot = await browser.call("Page.captureScreenshot", { format: "png" });
    const png = Uint8Array.from(atob(shot.data as string), (c) => c.charCodeAt(0));
    await Deno.writeFile(out, png);
    console.log(`${png.length} bytes written to ${out}`);
  } finally {
    await demo.stop();
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--serve") serveDemo();
  else await takeScreenshot(Deno.args[0] ?? "/tmp/astralboot-ui.png");
}
