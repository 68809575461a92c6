/**
 * Throwaway network namespaces for the lab, tests and benchmarks.
 *
 * Everything that opens DHCP/TFTP ports or broadcasts runs inside namespaces made here and
 * removed afterwards; nothing touches the host's own interfaces. Names carry a random suffix
 * so concurrent runs never collide, and `using` (or `dispose()`) removes them on any exit.
 *
 * @module
 */

/** Result of a command run to completion. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Runs a command and waits for it; throws with its stderr when it fails and `check` is set. */
export async function run(
  cmd: string[],
  options: { check?: boolean; stdin?: string; timeoutMs?: number; env?: Record<string, string> } =
    {},
): Promise<RunResult> {
  const [bin, ...args] = cmd;
  const child = new Deno.Command(bin!, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 60_000);
  const out = await child.output();
  clearTimeout(timer);
  const res = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if ((options.check ?? true) && res.code !== 0) {
    throw new Error(
      `${cmd.join(" ")} exited ${res.code}: ${res.stderr.trim() || res.stdout.trim()}`,
    );
  }
  return res;
}

/** A short random suffix for namespace and link names (link names max 15 chars). */
export function suffix(): string {
  return Math.random().toString(36).slice(2, 7);
}

/** How many times `dispose` runs `ip netns del` before it gives up. */
const DEL_ATTEMPTS = 10;

/** One network namespace. */
export class Netns {
  #disposed = false;
  private constructor(readonly name: string) {}

  /** Creates `<prefix>-<random>` with loopback up and IPv6 off (links that need it turn it on). */
  static async create(prefix: string): Promise<Netns> {
    const ns = new Netns(`${prefix}-${suffix()}`);
    await run(["ip", "netns", "add", ns.name]);
    await ns.exec(["ip", "link", "set", "lo", "up"]);
    await ns.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], { check: false });
    await ns.exec(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], { check: false });
    return ns;
  }

  /** argv prefix that runs a command inside this namespace. */
  wrap(cmd: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...cmd];
  }

  /**
   * Adds a bridge with STP off and forward delay 0 (a port forwards at once: firmware gives
   * up long before the default 15 s), with `cidr` when given, and brings it up.
   */
  async addBridge(name: string, cidr?: string): Promise<void> {
    await this.exec([
      "ip",
      "link",
      "add",
      name,
      "type",
      "bridge",
      "stp_state",
      "0",
      "forward_delay",
      "0",
    ]);
    if (cidr) await this.exec(["ip", "addr", "add", cidr, "dev", name]);
    await this.exec(["ip", "link", "set", name, "up"]);
  }

  /** Adds a tap (for QEMU) as a port of `bridge`, up. */
  async addTap(name: string, bridge: string): Promise<void> {
    await this.exec(["ip", "tuntap", "add", "dev", name, "mode", "tap"]);
    await this.exec(["ip", "link", "set", name, "master", bridge, "up"]);
  }

  /** Runs a command inside the namespace to completion. */
  exec(cmd: string[], options: Parameters<typeof run>[1] = {}): Promise<RunResult> {
    return run(this.wrap(cmd), options);
  }

  /** Starts a long-running command inside the namespace. */
  spawn(cmd: string[], options: Deno.CommandOptions = {}): Deno.ChildProcess {
    const [bin, ...args] = this.wrap(cmd);
    return new Deno.Command(bin!, {
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...options,
      args,
    }).spawn();
  }

  /** Removes the namespace (and with it every link inside). Processes inside are killed first. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const pids = await run(["ip", "netns", "pids", this.name], { check: false });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      await run(["kill", "-9", pid], { check: false });
    }
    // `ip netns del` detaches one mount of the namespace file, then unlinks it. While another
    // mount is stacked on the same file the unlink fails with EBUSY and the name stays listed
    // (a CI run saw it once; a second bind mount on the file does the same). Each try takes
    // one more mount off.
    let last: RunResult | undefined;
    for (let attempt = 1; attempt <= DEL_ATTEMPTS; attempt++) {
      last = await run(["ip", "netns", "del", this.name], { check: false });
      if (last.code === 0 || /No such file/.test(last.stderr)) return;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    }
    throw new Error(
      `cannot remove namespace ${this.name} after ${DEL_ATTEMPTS} tries: ${last?.stderr.trim()}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/**
 * Links two namespaces with a veth pair and gives each end an address (CIDR form).
 * Returns the interface names inside each namespace.
 */
export async function vethPair(
  a: Netns,
  aAddr: string,
  b: Netns,
  bAddr: string | null,
  names: { a?: string; b?: string } = {},
): Promise<{ a: string; b: string }> {
  const s = suffix();
  const tmpA = `va${s}`, tmpB = `vb${s}`;
  const nameA = names.a ?? "eth0", nameB = names.b ?? "eth0";
  await run([
    "ip",
    "link",
    "add",
    tmpA,
    "netns",
    a.name,
    "type",
    "veth",
    "peer",
    "name",
    tmpB,
    "netns",
    b.name,
  ]);
  await a.exec(["ip", "link", "set", tmpA, "name", nameA]);
  await b.exec(["ip", "link", "set", tmpB, "name", nameB]);
  await a.exec(["ip", "addr", "add", aAddr, "dev", nameA]);
  if (bAddr) await b.exec(["ip", "addr", "add", bAddr, "dev", nameB]);
  await a.exec(["ip", "link", "set", nameA, "up"]);
  await b.exec(["ip", "link", "set", nameB, "up"]);
  return { a: nameA, b: nameB };
}

/** Reads a child's whole stdout+stderr after killing it; for logs in failure messages. */
export async function stopAndCollect(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
): Promise<string> {
  try {
    child.kill(signal);
  } catch { /* already exited */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 5000);
  const out = await child.output();
  clearTimeout(timer);
  return decoder.decode(out.stdout) + decoder.decode(out.stderr);
}
