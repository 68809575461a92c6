/**
 * Runs headless Chromium inside a test namespace and relays its DevTools protocol, so that a
 * test outside the namespace can drive the browser (tests/chromium.ts):
 *
 *   ip netns exec NS deno run <flags> tests/chromium_runner.ts WIDTH HEIGHT
 *
 * Each line on stdin is one DevTools message for the page; each message from the page comes
 * out as one line on stdout. `{"relay":"ready","pid":N}` is printed once the page's WebSocket is
 * open, `{"relay":"error","message":…}` when Chromium cannot be had (then exit 2). When stdin
 * closes, on SIGTERM, or when Chromium goes away, Chromium is killed by its PID, its temporary
 * profile removed, and the runner exits.
 *
 * @module
 */

import { LineFollower } from "./dhcp_harness.ts";
import { errorMessage } from "../log.ts";

const enc = new TextEncoder();
const print = (v: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(v) + "\n"));

// The namespace is ours: its loopback holds nothing else, so a fixed port cannot collide.
const PORT = 9222;
const [width = "1280", height = "900"] = Deno.args;

const profile = await Deno.makeTempDir({ prefix: "ab-chromium-" });
let browser: LineFollower | undefined;
let ws: WebSocket | undefined;
let ending: Promise<never> | undefined;

/**
 * Kills Chromium (by its PID: SIGTERM, SIGKILL after 10 s), removes the profile, exits; with
 * Chromium's own output on stderr when `code` is not 0.
 */
function end(code: number): Promise<never> {
  return ending ??= (async () => {
    ws?.close();
    if (browser) {
      await browser.stop();
      if (code !== 0) Deno.stderr.writeSync(enc.encode(browser.output));
    }
    // Chromium's helpers may still write into the profile for a moment after it is gone.
    for (let i = 0; i < 10; i++) {
      try {
        await Deno.remove(profile, { recursive: true });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    Deno.exit(code);
  })();
}

Deno.addSignalListener("SIGTERM", () => end(0));

/** The page target's WebSocket address, once Chromium lists one (at most 20 s). */
async function pageSocketUrl(): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const targets: { type: string; webSocketDebuggerUrl: string }[] = await fetch(
      `http://127.0.0.1:${PORT}/json/list`,
      { signal: AbortSignal.timeout(2000) },
    ).then((r) => r.json()).catch(() => []);
    const page = targets.find((t) => t.type === "page");
    if (page) return page.webSocketDebuggerUrl;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Chromium opened no DevTools page on port ${PORT} within 20 s`);
}

try {
  browser = new LineFollower(
    new Deno.Command("chromium", {
      args: [
        "--headless=new",
        // As root Chromium refuses to start with its sandbox; the namespace is the fence here.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--password-store=basic",
        "--use-mock-keychain",
        "--mute-audio",
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        `--remote-debugging-port=${PORT}`,
        "about:blank",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
  browser.child.status.then(() => end(3));
  const url = await pageSocketUrl();
  const socket = new WebSocket(url);
  ws = socket;
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`cannot open ${url}`));
    setTimeout(() => reject(new Error(`${url} did not open within 10 s`)), 10_000);
  });
  socket.onmessage = (m) => Deno.stdout.writeSync(enc.encode(String(m.data) + "\n"));
  socket.onclose = () => end(0);
  print({ relay: "ready", pid: browser.child.pid });
} catch (e) {
  print({ relay: "error", message: errorMessage(e) });
  await end(2);
}

let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (line.trim()) ws!.send(line);
  }
}
await end(0);
