/**
 * The dashboard in a real browser: `main.ts serve` runs in a server namespace (bridge br0), a
 * client namespace gets a lease with udhcpc and asks for /boot.ipxe, and headless Chromium
 * (tests/chromium.ts) in a third namespace on the same bridge, which reaches nothing but the
 * server, opens /ui. Without the token it shows the form and nothing of the machines; a wrong
 * token is refused in words; the address `astralboot token` prints shows the machine, leaves
 * the token in sessionStorage only and takes it out of the address bar and the history; the
 * live feed shows what the client does next; what clients send is shown as text, never as
 * markup; and the page logs no error on the way. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
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
import { Chromium, type DevToolsEvent } from "./chromium.ts";
import type { Netns } from "./netns.ts";

const SERVER_IP = "10.83.0.1";
const BROWSER_IP = "10.83.0.2";
const BASE = `http://${SERVER_IP}:8080`;
// What a client may send: a DHCP host name, a TFTP file name and its SMBIOS serial, with markup.
const MARKUP = `<img src=x onerror="window.pwned=1">`;
const UUID = "12345678-9abc-def0-1122-334455667788";
/** What iPXE reports after `?mac=` (boot/inventory.ts), markup in the serial. */
const REPORT = `&uuid=${UUID}&serial=${encodeURIComponent(MARKUP)}&manufacturer=QEMU` +
  "&product=Standard%20PC&buildarch=i386&platform=pcbios";

/** What the page shows, read from its DOM. */
interface PageState {
  href: string;
  hash: string;
  /** The token form is on screen, and why it asks. */
  login: boolean;
  why: string;
  /** "No machine has asked yet" is on screen. */
  noMachines: boolean;
  cards: string[];
  rows: {
    mac: string;
    ip: string;
    hostname: string;
    hardware: string;
    hardwareDetail: string;
    stage: string;
    detail: string;
  }[];
  events: { fresh: boolean; mac: string; stage: string; detail: string }[];
  live: string;
  /** The token as this tab keeps it; what localStorage and cookies hold. */
  stored: string | null;
  localStorage: number;
  cookie: string;
  /** Elements in the body that only markup from the data could have made. */
  injected: number;
  pwned: unknown;
  /** What the test left in the page's window: there only while it is the same document. */
  mark: unknown;
}

// Null while another page (about:blank) or none is there.
const READ_PAGE = `(() => {
  const $ = (id) => document.getElementById(id);
  if (!$("machines") || !$("login-why") || !$("live")) return null;
  const shown = (e) => !!e && e.getClientRects().length > 0;
  const text = (e, sel) => e.querySelector(sel)?.textContent ?? "";
  return {
    href: location.href,
    hash: location.hash,
    login: shown($("login")),
    why: $("login-why").textContent,
    noMachines: shown($("no-machines")),
    cards: [...document.querySelectorAll(".card b")].map((b) => b.textContent),
    rows: [...document.querySelectorAll("#machines tbody tr")].map((tr) => ({
      mac: tr.cells[0].textContent,
      ip: tr.cells[1].textContent,
      hostname: tr.cells[2].textContent,
      hardware: text(tr.cells[3], "span:not(.detail)"),
      hardwareDetail: text(tr.cells[3], ".detail"),
      stage: text(tr.cells[6], ".stage"),
      detail: text(tr.cells[6], ".detail"),
    })),
    events: [...document.querySelectorAll("#events li")].map((li) => ({
      fresh: li.classList.contains("new"),
      mac: li.children[1].textContent,
      stage: text(li, ".stage"),
      detail: text(li, ".detail"),
    })),
    live: $("live").textContent,
    stored: sessionStorage.getItem("astralboot-token"),
    localStorage: localStorage.length,
    cookie: document.cookie,
    injected: document.querySelectorAll("body img, body svg, body script, body iframe").length,
    pwned: window.pwned ?? null,
    mark: window.mark ?? null,
  };
})()`;

/** A boot tree with one OS, so that /boot.ipxe answers a menu. */
async function makeTree(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/tree/tftp`, { recursive: true });
  await Deno.mkdir(`${dir}/tree/boot/tiny/images`, { recursive: true });
  await Deno.writeFile(`${dir}/tree/boot/tiny/images/vmlinuz`, new Uint8Array(1000));
  await Deno.writeFile(`${dir}/tree/boot/tiny/images/initrd.img`, new Uint8Array(1000));
}

/** curl inside `ns`; its body, failing on a non-2xx answer. */
async function curl(ns: Netns, url: string): Promise<string> {
  const r = await ns.exec(["curl", "-sS", "--fail", "--max-time", "10", url], {
    check: false,
    timeoutMs: 15_000,
  });
  assert.equal(r.code, 0, `curl ${url}: ${r.stderr}`);
  return r.stdout;
}

/** The dashboard address `astralboot token` prints for this config (run where br0 is). */
async function tokenUrl(ns: Netns, dir: string): Promise<string> {
  const r = await ns.exec(
    ["deno", "run", ...DENO_NS_FLAGS, repoPath("main.ts"), "token", "-c", `${dir}/config.toml`],
    { check: false, timeoutMs: 30_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const url = /dashboard: (\S+)/.exec(r.stderr)?.[1];
  assert.ok(url, r.stderr);
  return url;
}

Deno.test({
  name: "the dashboard in headless Chromium: login, machines, live feed, text only, no errors",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const t0 = Date.now();
    await using lab = await bridgeLab("abui", `${SERVER_IP}/24`, 2);
    const [client, browserNs] = lab.clients as [Netns, Netns];
    const mac = lab.macs[0]!;
    await browserNs.exec(["ip", "addr", "add", `${BROWSER_IP}/24`, "dev", "eth0"]);
    const dir = await Deno.makeTempDir({ prefix: "abui-dash-" });
    let serve: LineFollower | undefined;
    let browser: Chromium | undefined;
    // What the page said on its console, and the answers it got from the API.
    const problems: string[] = [];
    const answers: { url: string; status: number; at: number }[] = [];
    const cacheMisses: { at: number; why: string }[] = [];
    const page = () => browser!.evaluate<PageState | null>(READ_PAGE);
    /** Reads the page until `ok` holds (that state), or fails after `ms` with the last one. */
    const pageWhen = async (ok: (s: PageState) => boolean, ms: number, what: string) => {
      let last: PageState | null = null;
      try {
        return await until(
          async () => {
            // Between two documents the page may not answer for a moment.
            last = await page().catch(() => null);
            return last && ok(last) ? last : undefined;
          },
          ms,
          what,
        );
      } catch (e) {
        throw new Error(`${what}; the page: ${JSON.stringify(last, null, 1)}`, { cause: e });
      }
    };
    /** Event streams the server has open, as /metrics counts them. */
    const streams = async () => {
      const metrics = await curl(client, `${BASE}/metrics`);
      return Number(/^astralboot_event_stream_clients (\d+)$/m.exec(metrics)?.[1]);
    };
    const navigate = async (url: string) => {
      const r = await browser!.call("Page.navigate", { url });
      assert.equal(r.errorText, undefined, `${url}: ${r.errorText}`);
    };
    try {
      await makeTree(dir);
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        serveConfig(dir, `range = ["10.83.0.100", "10.83.0.120"]`),
      );
      // The two slow starts overlap.
      const [served, launched] = await Promise.allSettled([
        startServe(lab.server, dir),
        Chromium.launch(browserNs),
      ]);
      if (served.status === "fulfilled") serve = served.value;
      if (launched.status === "fulfilled") browser = launched.value;
      if (served.status === "rejected") throw served.reason;
      if (launched.status === "rejected") throw launched.reason;
      const started = Date.now() - t0;

      browser!.on(({ method, params }: DevToolsEvent) => {
        if (method === "Runtime.exceptionThrown") {
          problems.push(`exception: ${JSON.stringify(params.exceptionDetails)}`);
        } else if (method === "Runtime.consoleAPICalled") {
          if (params.type === "error" || params.type === "assert") {
            problems.push(`console.${params.type}: ${JSON.stringify(params.args)}`);
          }
        } else if (method === "Log.entryAdded") {
          const e = params.entry as { level: string; source: string; text: string; url?: string };
          // The API's 401s are answers the page asked for (and the test checks them itself).
          const refused = e.source === "network" && e.text.includes("401") &&
            new URL(e.url ?? "http://x/").pathname.startsWith("/api/");
          if (e.level === "error" && !refused) problems.push(`${e.source}: ${e.text} ${e.url}`);
        } else if (method === "Page.backForwardCacheNotUsed") {
          cacheMisses.push({ at: Date.now(), why: JSON.stringify(params.notRestoredExplanations) });
        } else if (method === "Network.responseReceived") {
          const r = params.response as { url: string; status: number };
          answers.push({ url: r.url, status: r.status, at: Date.now() });
        }
      });
      for (const domain of ["Page", "Runtime", "Log", "Network"]) {
        await browser!.call(`${domain}.enable`);
      }

      let ip = "";
      await t.step(
        "a client gets a lease (its host name has markup) and asks /boot.ipxe, reporting itself",
        async () => {
          ip = await udhcpcLease(client, dir, "uc", 2, ["-x", `hostname:${MARKUP}`]) ?? "none";
          assert.match(ip, /^10\.83\.0\.1\d\d$/);
          assert.match(await curl(client, `${BASE}/boot.ipxe?mac=${mac}${REPORT}`), /^#!ipxe/);
        },
      );

      await t.step("without a token: the form, no machine data, no API answer", async () => {
        const t1 = Date.now();
        await navigate(`${BASE}/ui`);
        const s = await pageWhen((s) => s.login, 5000, "the token form");
        assert.match(s.why, /admin token/);
        assert.deepEqual(s.rows, []);
        assert.deepEqual(s.events, []);
        assert.ok(s.cards.every((c) => c === "–"), `${s.cards}`);
        assert.equal(s.noMachines, false, "it claims no machine has asked");
        assert.equal(s.live, "no token");
        assert.equal(s.stored, null);
        const body = await browser!.evaluate<string>("document.body.innerText");
        assert.ok(!body.includes(mac) && !body.includes(ip), body);
        // It asked nothing it could not have; the API itself refuses this browser.
        assert.deepEqual(answers.filter((a) => a.at >= t1 && a.url.includes("/api/")), []);
        const statuses = await browser!.evaluate<number[]>(
          `Promise.all(["/api/overview", "/api/events", "/api/leases"].map((p) =>
             fetch(p).then((r) => r.status)))`,
        );
        assert.deepEqual(statuses, [401, 401, 401]);
      });

      await t.step("a wrong token typed into the form is refused in words", async () => {
        const t1 = Date.now();
        await browser!.evaluate(`document.getElementById("login-token").focus()`);
        await browser!.call("Input.insertText", { text: "not-the-token-0123456789" });
        for (const type of ["keyDown", "keyUp"]) {
          await browser!.call("Input.dispatchKeyEvent", {
            type,
            key: "Enter",
            code: "Enter",
            windowsVirtualKeyCode: 13,
            ...(type === "keyDown" ? { text: "\r" } : {}),
          });
        }
        const s = await pageWhen((s) => s.login && /refused/i.test(s.why), 5000, "refusal");
        assert.deepEqual(s.rows, []);
        assert.equal(s.stored, null);
        const asked = answers.filter((a) => a.at >= t1 && a.url.includes("/api/"));
        assert.ok(asked.length >= 1, "the form asked nothing");
        assert.deepEqual(asked.map((a) => a.status), asked.map(() => 401));
      });

      const url = await tokenUrl(lab.server, dir);
      const token = (await Deno.readTextFile(`${dir}/data/api-token`)).trim();
      assert.equal(url, `${BASE}/ui#token=${token}`);
      // How the admin comes to the page, and whether it is the same document as before (a
      // fragment navigation, or the back/forward cache that kept the page left behind).
      const cases: [string, boolean, () => Promise<void>][] = [
        ["pasted into the tab that shows the form", true, () => navigate(url)],
        ["opened afresh", false, async () => {
          await browser!.evaluate("sessionStorage.clear()");
          await navigate("about:blank");
          await navigate(url);
        }],
        ["pasted again into the tab that shows the machines", true, () => navigate(url)],
        ["left for another page and come back to", true, async () => {
          await navigate("about:blank");
          const blank = () => browser!.evaluate("location.href").catch(() => "");
          await until(async () => await blank() === "about:blank" || undefined, 5000, "left");
          const h = await browser!.call("Page.getNavigationHistory");
          const back = (h.entries as { id: number }[])[(h.currentIndex as number) - 1]!;
          await browser!.call("Page.navigateToHistoryEntry", { entryId: back.id });
        }],
      ];
      for (const [how, same, go] of cases) {
        await t.step(`${BASE}/ui#token=… ${how}: the machine, the token out of sight`, async () => {
          const t1 = Date.now();
          await browser!.evaluate(`window.mark = ${JSON.stringify(how)}`);
          await go();
          const s = await pageWhen(
            (s) => s.rows.some((r) => r.mac === mac) && s.live === "live" && s.hash === "",
            5000,
            "the machine, live",
          );
          const row = s.rows.find((r) => r.mac === mac)!;
          assert.equal(row.ip, ip);
          // The registry's name: the DHCP host name (its markup cut out) is the lease's only.
          assert.equal(row.hostname, `node-${mac.replaceAll(":", "")}`);
          // What it reported, as text; its markup was cleaned at the server already.
          assert.equal(row.hardware, "QEMU Standard PC");
          assert.equal(
            row.hardwareDetail,
            `serial ?img src?x onerror??window.pwned?1?? · uuid ${UUID} · pcbios i386`,
          );
          assert.equal(row.stage, "menu");
          assert.equal(s.login, false);
          assert.equal(s.noMachines, false);
          assert.equal(s.cards[0], "1");
          assert.ok(s.events.some((e) => e.stage === "dhcp-ack" && e.mac === mac));
          assert.equal(s.href, `${BASE}/ui`);
          assert.equal(s.stored, token);
          assert.equal(s.localStorage, 0);
          assert.equal(s.cookie, "");
          const history = await browser!.call("Page.getNavigationHistory");
          const entries = (history.entries as { url: string }[]).map((e) => e.url);
          assert.ok(!entries.some((u) => u.includes(token)), `${entries}`);
          // Sent as a header only: in no URL the page asked for, nowhere in the page.
          assert.ok(!answers.some((a) => a.url.includes(token)));
          const html = await browser!.evaluate<string>(
            `document.documentElement.outerHTML + document.getElementById("login-token").value`,
          );
          assert.ok(!html.includes(token));
          // One stream at the server: a page left behind closed its own (the back/forward cache
          // would keep it open, unread), a second token opened none.
          await until(async () => await streams() === 1 || undefined, 5000, "one event stream");
          const misses = cacheMisses.filter((m) => m.at >= t1).map((m) => m.why);
          assert.equal(s.mark === how, same, `the back/forward cache was not used: ${misses}`);
        });
      }

      let liveMs = 0;
      await t.step("the live feed shows a request made after the page loaded", async () => {
        const before = (await page())!.events.filter((e) => e.fresh).length;
        const t1 = Date.now();
        await curl(client, `${BASE}/boot.ipxe?mac=${mac}`);
        const s = await pageWhen(
          (s) => s.events.filter((e) => e.fresh).length > before,
          5000,
          "the new event",
        );
        liveMs = Date.now() - t1;
        const e = s.events[0]!;
        assert.deepEqual([e.fresh, e.mac, e.stage], [true, mac, "menu"]);
        assert.match(e.detail, new RegExp(`^${ip.replaceAll(".", "\\.")} · `));
      });

      await t.step("markup in a client's TFTP file name is shown as text", async () => {
        const r = await client.exec(
          ["tftp", "-m", "binary", SERVER_IP, "-c", "get", MARKUP, `${dir}/got`],
          { check: false, timeoutMs: 15_000 },
        );
        assert.match(r.stdout + r.stderr, /not found/i);
        const s = await pageWhen(
          (s) => s.events[0]?.stage === "tftp-failed" && s.rows[0]?.stage === "tftp-failed",
          5000,
          "the failed transfer",
        );
        assert.ok(s.events[0]!.detail.includes(MARKUP), s.events[0]!.detail);
        assert.ok(s.rows[0]!.detail.startsWith(MARKUP), s.rows[0]!.detail);
        assert.equal(s.injected, 0);
        assert.equal(s.pwned, null);
      });

      await t.step("the page logged no error and threw nothing", () => {
        assert.deepEqual(problems, []);
      });

      console.log(
        `dashboard: serve and Chromium up in ${started} ms, a live event on the page ` +
          `${liveMs} ms after its request, ${Date.now() - t0} ms in all`,
      );
    } finally {
      await browser?.close();
      if (serve) await serve.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
