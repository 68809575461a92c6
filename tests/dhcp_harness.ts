/**
 * Shared pieces of the DHCP tests: run Deno scripts inside a namespace and follow their
 * output line by line.
 *
 * @module
 */
import { Netns, run, suffix } from "./netns.ts";

/** Permissions a DHCP process needs inside its namespace. */
export const DENO_NS_FLAGS = [
  "--unstable-net",
  "--allow-ffi",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  "--allow-net",
  "--allow-env",
  "--allow-run",
];

/** Absolute path of a file in this repository, for subprocesses started elsewhere. */
export function repoPath(rel: string): string {
  return new URL(`../${rel}`, import.meta.url).pathname;
}

/** A child process whose stdout is split into lines as they come. */
export class LineFollower {
  readonly lines: string[] = [];
  #stderr = "";
  #waiters: (() => void)[] = [];
  #done: Promise<void>;

  /** `onLine` sees each line as it comes, before any `waitFor`. */
  constructor(readonly child: Deno.ChildProcess, readonly onLine?: (line: string) => void) {
    this.#done = Promise.all([this.#pump(), this.#pumpErr()]).then(() => {});
  }

  async #pump(): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of this.child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        this.onLine?.(line);
      }
      this.#waiters.splice(0).forEach((w) => w());
    }
    if (buf) {
      this.lines.push(buf);
      this.onLine?.(buf);
    }
    this.#waiters.splice(0).forEach((w) => w());
  }

  async #pumpErr(): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of this.child.stderr) this.#stderr += dec.decode(chunk);
  }

  /** Everything printed so far, stdout then stderr; for failure messages. */
  get output(): string {
    return this.lines.join("\n") + "\n" + this.#stderr;
  }

  /** Waits until a line satisfies `pred`; throws with the output so far after `ms`. */
  async waitFor(pred: (line: string) => boolean, ms: number, what = "line"): Promise<string> {
    const deadline = Date.now() + ms;
    let seen = 0;
    for (;;) {
      for (; seen < this.lines.length; seen++) {
        if (pred(this.lines[seen]!)) return this.lines[seen]!;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}; output:\n${this.output}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((r) => this.#waiters.push(r)),
        new Promise<void>((r) => timer = setTimeout(r, Math.min(left, 500))),
      ]);
      clearTimeout(timer);
    }
  }

  /** Waits for the process to end (after it was told to stop) and for its output. */
  async finished(ms = 10_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, ms);
    const status = await this.child.status;
    await this.#done;
    clearTimeout(timer);
    return status;
  }

  /** Sends SIGTERM and waits for the end. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* already gone */ }
    return await this.finished();
  }
}

/**
 * Starts `deno run <flags> <script> <args>` inside the namespace; `stdin: "piped"` to write to
 * it, `onLine` to see each line of its output as it comes.
 */
export function spawnDeno(
  ns: Netns,
  script: string,
  args: string[],
  options: SpawnDenoOptions = {},
): LineFollower {
  const path = script.startsWith("/") ? script : repoPath(script);
  const flags = options.flags ?? DENO_NS_FLAGS;
  return new LineFollower(
    ns.spawn([...options.prefix ?? [], "deno", "run", ...flags, path, ...args], {
      stdin: options.stdin ?? "null",
      env: options.env,
    }),
    options.onLine,
  );
}

/** Options of {@linkcode spawnDeno}. */
export interface SpawnDenoOptions {
  stdin?: "piped" | "null";
  onLine?: (line: string) => void;
  /** argv put before `deno` inside the namespace (setpriv, strace, a mount namespace…). */
  prefix?: string[];
  /** Deno flags instead of {@linkcode DENO_NS_FLAGS}. */
  flags?: readonly string[];
  /** Added to the environment. */
  env?: Record<string, string>;
}

/** Starts tests/dhcp_runner.ts with `options` and waits until its sockets are open. */
export async function startRunner(ns: Netns, options: unknown): Promise<LineFollower> {
  const f = spawnDeno(ns, "tests/dhcp_runner.ts", [JSON.stringify(options)]);
  await f.waitFor((l) => l.includes('"ready"') || l.includes('"error"'), 90_000, "server ready");
  if (!f.lines.some((l) => l.includes('"ready"'))) {
    await f.stop();
    throw new Error(`DHCP runner did not start:\n${f.output}`);
  }
  return f;
}

/** Lines of a follower parsed as JSON, skipping others. */
export function jsonLines(f: LineFollower): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of f.lines) {
    try {
      const v = JSON.parse(l);
      if (v && typeof v === "object") out.push(v);
    } catch { /* not JSON */ }
  }
  return out;
}

/** A server namespace with a bridge `br0` and client namespaces hanging off it (one veth each). */
export interface BridgeLab {
  server: Netns;
  clients: Netns[];
  /** MAC address of each client's eth0. */
  macs: string[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** Builds a {@linkcode BridgeLab}: `br0` gets `serverCidr`, clients get no address. */
export async function bridgeLab(prefix: string, serverCidr: string, n: number): Promise<BridgeLab> {
  const made: Netns[] = [];
  const dispose = async () => {
    for (const ns of made.reverse()) await ns.dispose();
  };
  try {
    const server = await Netns.create(prefix);
    made.push(server);
    await server.addBridge("br0", serverCidr);
    const clients: Netns[] = [];
    const macs: string[] = [];
    for (let i = 0; i < n; i++) {
      const c = await Netns.create(prefix);
      made.push(c);
      clients.push(c);
      const port = `p${i}${suffix()}`;
      await run([
        "ip",
        "link",
        "add",
        port,
        "netns",
        server.name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        c.name,
      ]);
      await server.exec(["ip", "link", "set", port, "master", "br0", "up"]);
      await c.exec(["ip", "link", "set", "eth0", "up"]);
      macs.push((await c.exec(["cat", "/sys/class/net/eth0/address"])).stdout.trim());
    }
    return { server, clients, macs, [Symbol.asyncDispose]: dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/**
 * A client hook script that records each event's environment as `<dir>/<tag>.<event>.env`
 * (udhcpc passes the event as $1, dhclient as $reason), appends the event to `<dir>/<tag>.events`
 * and configures the address so that unicast renewals can be answered.
 */
export async function hookScript(dir: string, tag: string): Promise<string> {
  const path = `${dir}/${tag}.hook`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
ev="\${1:-$reason}"
env | sort > "${dir}/${tag}.$ev.env.tmp" && mv "${dir}/${tag}.$ev.env.tmp" "${dir}/${tag}.$ev.env"
echo "$ev" >> "${dir}/${tag}.events"
case "$ev" in
  bound|renew) ip addr replace "$ip/$subnet" dev "$interface" ;;
  BOUND|RENEW|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** Reads a KEY=value file written by {@linkcode hookScript}. */
export async function readEnv(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await Deno.readTextFile(path)).split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).replace(/^'(.*)'$/, "$1");
  }
  return out;
}

/** Polls until `fn` returns a value (not undefined) or `ms` pass; throws `what` on timeout. */
export async function until<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Events recorded by a {@linkcode hookScript}, oldest first. */
export async function hookEvents(dir: string, tag: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(`${dir}/${tag}.events`)).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

/** Options for {@linkcode startServe}. */
export interface ServeOptions {
  /** More arguments. */
  extra?: string[];
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Serve `<dir>/tree` (`-l`); false: the config's `ref`. Default true. */
  local?: boolean;
  /** argv before `deno` (setpriv …), Deno flags, and another path of main.ts. */
  prefix?: string[];
  flags?: readonly string[];
  script?: string;
}

/**
 * Starts `main.ts serve -c <dir>/config.toml -l <dir>/tree --log-format json` inside the
 * namespace and waits until its DHCP server listens; see {@linkcode ServeOptions}.
 */
export async function startServe(ns: Netns, dir: string, o: ServeOptions = {}) {
  const local = o.local === false ? [] : ["-l", `${dir}/tree`];
  const f = spawnDeno(
    ns,
    o.script ?? "main.ts",
    ["serve", "-c", `${dir}/config.toml`, ...local, "--log-format", "json", ...(o.extra ?? [])],
    { env: o.env, prefix: o.prefix, flags: o.flags },
  );
  try {
    await f.waitFor((l) => l.includes("DHCP listening"), 90_000, "DHCP listening");
  } catch (e) {
    await f.stop();
    throw e;
  }
  return f;
}

/**
 * busybox udhcpc once on eth0 (quit when bound, three DISCOVERs `gapSeconds` apart, with
 * `extra` arguments such as `-x hostname:NAME`); the address it was bound to, or null when it
 * got none.
 */
export async function udhcpcLease(
  ns: Netns,
  dir: string,
  tag: string,
  gapSeconds = 2,
  extra: string[] = [],
): Promise<string | null> {
  const hook = await hookScript(dir, tag);
  const r = await ns.exec(
    [
      "udhcpc",
      "-f",
      "-i",
      "eth0",
      "-q",
      "-n",
      "-t",
      "3",
      "-T",
      String(gapSeconds),
      "-s",
      hook,
      ...extra,
    ],
    { check: false, timeoutMs: 60_000 },
  );
  if (r.code !== 0) return null;
  return (await readEnv(`${dir}/${tag}.bound.env`)).ip ?? null;
}

/**
 * Whether busybox udhcpc on eth0 of `ns` got an address from `tries` DISCOVERs a second apart:
 * for the tests that a server gives none. Throws when udhcpc did not end either way (exit 1 is
 * "no lease"; a crash or a timeout is not a refusal).
 */
export async function udhcpcBinds(ns: Netns, tries = 2): Promise<boolean> {
  const r = await ns.exec(
    [
      "udhcpc",
      "-f",
      "-q",
      "-n",
      "-t",
      String(tries),
      "-T",
      "1",
      "-A",
      "1",
      "-i",
      "eth0",
      "-s",
      "/bin/true",
    ],
    { check: false, timeoutMs: 60_000 },
  );
  if (r.code !== 0 && r.code !== 1) throw new Error(`udhcpc ended with ${r.code}: ${r.stderr}`);
  return r.code === 0;
}

/**
 * A config.toml for {@linkcode startServe} on a bridgeLab: DHCP server mode on br0 with a one
 * hour lease plus the `dhcp` lines, HTTP on `httpPort` (8080), then `rest` (tables like
 * [[machine]]).
 */
export function serveConfig(dir: string, dhcp: string, rest = "", httpPort = 8080): string {
  return `interface = "br0"
data_dir = "${dir}/data"
[dhcp]
mode = "server"
lease = "1h"
${dhcp}
[http]
port = ${httpPort}
${rest}`;
}

/** What `curl` in `ns` got for `url`: status and body; throws when curl itself failed. */
export async function curlFrom(
  ns: Netns,
  url: string,
  init: { method?: string; headers?: string[] } = {},
): Promise<{ status: number; body: string }> {
  const r = await ns.exec(
    [
      "curl",
      "-sS",
      "--max-time",
      "10",
      "-X",
      init.method ?? "GET",
      ...(init.headers ?? []).flatMap((h) => ["-H", h]),
      "-w",
      "\n%{http_code}",
      url,
    ],
    { check: false, timeoutMs: 20_000 },
  );
  if (r.code !== 0) throw new Error(`curl ${url} exited ${r.code}: ${r.stderr}`);
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}
