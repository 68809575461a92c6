/**
 * A server namespace and a client namespace joined by a veth pair, for the TFTP tests and
 * benchmark. The server side serves a fresh temp folder (with its `tftp/` subtree) through our
 * server (tests/tftp_runner.ts) or Debian's in.tftpd; the client side runs real clients.
 * Everything (namespaces, processes, folders) goes away in `dispose()`, also on failure.
 *
 * @module
 */
import { join } from "node:path";
import { DENO_NS_FLAGS, jsonLines, LineFollower, repoPath } from "./dhcp_harness.ts";
import { Netns, type RunResult, vethPair } from "./netns.ts";

/** Server and client addresses inside the namespaces (never on the host). */
export const SERVER_IP = "10.203.0.1";
export const CLIENT_IP = "10.203.0.2";
/** The server's and the other namespace's addresses on the link of {@linkcode TftpLab.addOtherLink}. */
export const OTHER_SERVER_IP = "10.203.1.1";
export const OTHER_IP = "10.203.1.2";

/** Random bytes (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Hex SHA-256 of a file. */
export async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** argv prefix pinning a process to one CPU (unpinned figures flip by 3x on 2-core machines). */
function pin(cpu?: number): string[] {
  return cpu === undefined ? [] : ["taskset", "-c", String(cpu)];
}

/** Options of {@linkcode TftpLab.create}. */
export interface TftpLabOptions {
  /** Namespace name prefix; the TFTP tests own "abt". */
  prefix?: string;
}

/** The two namespaces, the served folder and the running server. */
export class TftpLab {
  #server: LineFollower | null = null;
  #hpa: Deno.ChildProcess | null = null;
  #extra: Netns[] = [];
  #disposed = false;

  private constructor(
    readonly serverNs: Netns,
    readonly clientNs: Netns,
    /** Served folder; files go in `root/tftp/`. */
    readonly root: string,
    /** Scratch folder for downloads and anything outside the root. */
    readonly scratch: string,
    /** Namespace name prefix. */
    readonly prefix: string,
  ) {}

  static async create(options: TftpLabOptions = {}): Promise<TftpLab> {
    const prefix = options.prefix ?? "abt";
    const made: Netns[] = [];
    const dirs: string[] = [];
    try {
      const s = await Netns.create(`${prefix}-s`);
      made.push(s);
      const c = await Netns.create(`${prefix}-c`);
      made.push(c);
      await vethPair(s, `${SERVER_IP}/24`, c, `${CLIENT_IP}/24`);
      const root = await Deno.makeTempDir({ prefix: "abt-tftp-root-" });
      dirs.push(root);
      const scratch = await Deno.makeTempDir({ prefix: "abt-tftp-scratch-" });
      dirs.push(scratch);
      await Deno.mkdir(join(root, "tftp"));
      return new TftpLab(s, c, root, scratch, prefix);
    } catch (e) {
      for (const ns of made) await ns.dispose();
      for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /** Writes a file under `root/tftp/` and returns its path. */
  async put(name: string, data: Uint8Array): Promise<string> {
    const path = join(this.root, "tftp", name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, data);
    return path;
  }

  /** Starts our server in the server namespace (pinned to `cpu` if given) until it listens. */
  async startOurs(args: string[] = [], cpu?: number): Promise<LineFollower> {
    this.#server = new LineFollower(this.serverNs.spawn([
      ...pin(cpu),
      "deno",
      "run",
      ...DENO_NS_FLAGS,
      repoPath("tests/tftp_runner.ts"),
      ...["--address", SERVER_IP, "--port", "69", "--dir", this.root, ...args],
    ]));
    await this.#server.waitFor((l) => l.includes('"listening"'), 30_000, "TFTP server start");
    return this.#server;
  }

  /**
   * Starts the program as shipped, `main.ts serve -l ROOT` (DHCP off, HTTP on 8080), in the
   * server namespace; its TFTP goes through the real local content store. `tftp` adds keys
   * to its `[tftp]` section.
   */
  async startShipped(tftp: Record<string, number> = {}): Promise<LineFollower> {
    const dir = join(this.scratch, "serve");
    await Deno.mkdir(dir, { recursive: true });
    const config = join(dir, "config.toml");
    const keys = Object.entries(tftp).map(([k, v]) => `${k} = ${v}\n`).join("");
    await Deno.writeTextFile(
      config,
      `interface = "eth0"\ndata_dir = "${dir}/data"\n[dhcp]\nmode = "off"\n[http]\nport = 8080\n` +
        `[tftp]\n${keys}`,
    );
    this.#server = new LineFollower(this.serverNs.spawn([
      "deno",
      "run",
      ...DENO_NS_FLAGS,
      repoPath("main.ts"),
      ...["serve", "-c", config, "-l", this.root, "--log-format", "json"],
    ]));
    await this.#server.waitFor(
      (l) => l.includes('"subsystem":"tftp"') && l.includes("listening"),
      90_000,
      "main.ts serve: TFTP listening",
    );
    return this.#server;
  }

  /** Starts Debian's in.tftpd (tftpd-hpa) in the foreground in the server namespace. */
  async startTftpdHpa(cpu?: number): Promise<void> {
    const cmd = ["in.tftpd", "-L", "-4", "-u", "root", "-s", join(this.root, "tftp")];
    cmd.push("-a", `${SERVER_IP}:69`);
    this.#hpa = this.serverNs.spawn([...pin(cpu), ...cmd]);
    // Ready once port 69 is bound inside the namespace.
    for (let i = 0; i < 100; i++) {
      const ss = await this.serverNs.exec(["ss", "-uln"], { check: false });
      if (ss.stdout.includes(`${SERVER_IP}:69`)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("in.tftpd did not start listening");
  }

  /** JSON log lines of our server so far. */
  serverLog(): Record<string, unknown>[] {
    return this.#server ? jsonLines(this.#server) : [];
  }

  /** The "transfer done"/"transfer failed" lines of our server so far. */
  transfers(): Record<string, unknown>[] {
    return this.serverLog().filter((l) =>
      l.subsystem === "tftp" && /^transfer /.test(String(l.msg))
    );
  }

  /** Stops whichever server runs; returns our server's output (for failure messages). */
  async stopServer(): Promise<string> {
    let out = "";
    if (this.#server) {
      await this.#server.stop();
      out = this.#server.output;
      this.#server = null;
    }
    if (this.#hpa) {
      try {
        this.#hpa.kill("SIGTERM");
      } catch { /* gone */ }
      await this.#hpa.output();
      this.#hpa = null;
    }
    return out;
  }

  /** Drops 1 in `mod` UDP datagrams in each direction, in the server namespace (no netem here). */
  async addLoss(mod = 10): Promise<void> {
    const nft = (args: string) => this.serverNs.exec(["nft", ...args.split(" ")]);
    await nft("add table inet abtloss");
    for (const hook of ["input", "output"]) {
      await this.serverNs.exec([
        "nft",
        `add chain inet abtloss ${hook} { type filter hook ${hook} priority 0 ; }`,
      ]);
      await nft(
        `add rule inet abtloss ${hook} meta l4proto udp numgen random mod ${mod} 0 counter drop`,
      );
    }
  }

  /** Counters of the loss rules (packets dropped per direction). */
  async lossCounters(): Promise<string> {
    return (await this.serverNs.exec(["nft", "list", "table", "inet", "abtloss"])).stdout;
  }

  /**
   * A third namespace on a second link of the server (its `eth1`, {@linkcode OTHER_SERVER_IP}),
   * routing to {@linkcode SERVER_IP} through it: a host on a network the server must not serve
   * that still knows the server's boot address. Removed with the lab.
   */
  async addOtherLink(): Promise<Netns> {
    const other = await Netns.create(`${this.prefix}-o`);
    this.#extra.push(other);
    await vethPair(this.serverNs, `${OTHER_SERVER_IP}/24`, other, `${OTHER_IP}/24`, {
      a: "eth1",
      b: "eth0",
    });
    await other.exec(["ip", "route", "add", `${SERVER_IP}/32`, "via", OTHER_SERVER_IP]);
    return other;
  }

  /** Runs a command in the client namespace (optionally pinned to a CPU). */
  client(cmd: string[], timeoutMs: number, cpu?: number): Promise<RunResult> {
    return this.clientNs.exec([...pin(cpu), ...cmd], { check: false, timeoutMs });
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.stopServer().catch(() => "");
    for (const ns of this.#extra) await ns.dispose();
    await this.clientNs.dispose();
    await this.serverNs.dispose();
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
    await Deno.remove(this.scratch, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** A real TFTP client invocation: argv fetching `remote` into `local`. */
export interface ClientSpec {
  name: string;
  argv: (remote: string, local: string) => string[];
}

/** tftp-hpa 5.2: 512-byte blocks only (its client has no blksize option). */
export const TFTP_HPA: ClientSpec = {
  name: "tftp-hpa",
  argv: (r, l) => ["tftp", "-m", "binary", SERVER_IP, "-c", "get", r, l],
};

/** atftp with RFC 2348/7440 options, e.g. `atftp(1468, 4)`. */
export function atftp(blksize?: number, windowsize?: number): ClientSpec {
  const opts: string[] = [];
  if (blksize) opts.push("--option", `blksize ${blksize}`);
  if (windowsize) opts.push("--option", `windowsize ${windowsize}`);
  return {
    name: `atftp${blksize ? ` blksize ${blksize}` : ""}${
      windowsize ? ` windowsize ${windowsize}` : ""
    }`,
    argv: (r, l) => ["atftp", ...opts, "-g", "-r", r, "-l", l, SERVER_IP],
  };
}

/** curl with `--tftp-blksize` (it also sends tsize and timeout 6). */
export function curl(blksize: number): ClientSpec {
  return {
    name: `curl blksize ${blksize}`,
    argv: (
      r,
      l,
    ) => ["curl", "-sS", "-o", l, "--tftp-blksize", String(blksize), `tftp://${SERVER_IP}/${r}`],
  };
}

/** Runs a client in the lab; resolves with the downloaded file's hash and the wall time. */
export async function fetchWith(
  lab: TftpLab,
  spec: ClientSpec,
  remote: string,
  options: { timeoutMs?: number; cpu?: number; local?: string } = {},
): Promise<{ sha256: string | null; seconds: number; result: RunResult; local: string }> {
  const local = options.local ?? join(lab.scratch, `${crypto.randomUUID()}.out`);
  const t0 = performance.now();
  const result = await lab.client(
    spec.argv(remote, local),
    options.timeoutMs ?? 120_000,
    options.cpu,
  );
  const seconds = (performance.now() - t0) / 1000;
  let sha256: string | null = null;
  try {
    sha256 = await sha256File(local);
  } catch { /* no file */ }
  return { sha256, seconds, result, local };
}
