/**
 * `main.ts serve` as the systemd unit runs it: a user that is not root, with CAP_NET_BIND_SERVICE
 * and CAP_NET_RAW only (ambient, and the bounding set cut to them, no new privileges), its data
 * dir its own, the program's shipped permission flags (tools/build.ts). Real clients in another
 * namespace get a DHCP lease (udhcpc), a TFTP file (tftp-hpa) and their HTTP boot script (curl)
 * on the privileged ports 67, 69 and 80, and the router-advertisement socket (raw ICMPv6) opens.
 * Under strace, every system call it made must pass the unit's SystemCallFilter.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  type LineFollower,
  serveConfig,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";
import { inPrivateMounts, type Netns, run } from "./netns.ts";
import { repoRoot, RUN_FLAGS } from "../tools/build.ts";

const SERVER_IP = "10.84.0.1";
/** A uid and gid no account has: nothing on the host is theirs but the test's folder. */
const UID = 64711;
const CAPS = "+net_bind_service,+net_raw";
const UNIT = `${repoRoot()}/contrib/systemd/astralboot.service`;
/** Calls that may fail under the filter (SystemCallErrorNumber=EPERM) without harm. */
const MAY_FAIL: Record<string, string> = {
  pkey_alloc: "V8 probes memory protection keys and runs without them",
};

/** The syscall names of a `systemd-analyze syscall-filter` group, nested groups expanded. */
async function expandGroup(group: string, seen = new Set<string>()): Promise<Set<string>> {
  const out = new Set<string>();
  if (seen.has(group)) return out;
  seen.add(group);
  const text = (await run(["systemd-analyze", "syscall-filter", group])).stdout;
  for (const line of text.split("\n").slice(1)) {
    const name = line.trim();
    if (!name || name.startsWith("#")) continue;
    if (name.startsWith("@")) (await expandGroup(name, seen)).forEach((n) => out.add(n));
    else out.add(name);
  }
  return out;
}

/** The calls the unit's SystemCallFilter= lines allow: allow-list first, `~` lines remove. */
async function allowedByUnit(unit: string): Promise<Set<string>> {
  const allowed = new Set<string>();
  for (const m of unit.matchAll(/^SystemCallFilter=(~?)(.+)$/gm)) {
    for (const item of m[2]!.trim().split(/\s+/)) {
      const names = item.startsWith("@") ? await expandGroup(item) : new Set([item]);
      names.forEach((n) => m[1] ? allowed.delete(n) : allowed.add(n));
    }
  }
  return allowed;
}

/** The deno process of the server: the one in the namespace whose command is deno. */
async function serverPid(ns: Netns): Promise<number> {
  const pids = (await run(["ip", "netns", "pids", ns.name])).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    const comm = await Deno.readTextFile(`/proc/${pid}/comm`).catch(() => "");
    if (comm.trim() === "deno") return Number(pid);
  }
  throw new Error(`no deno process in ${ns.name}`);
}

Deno.test({
  name: "serve as an unprivileged user with two capabilities serves DHCP, TFTP and HTTP",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abu", `${SERVER_IP}/24`, 1);
    const client = lab.clients[0]!;
    const mac = lab.macs[0]!;
    const dir = await Deno.makeTempDir({ prefix: "abu-unpriv-" });
    let serve: LineFollower | undefined;
    try {
      // IPv6 on the bridge, so that the router-advertisement socket (raw ICMPv6) is opened.
      await lab.server.exec(["sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=0"]);
      await Deno.mkdir(`${dir}/tree/tftp`, { recursive: true });
      await Deno.mkdir(`${dir}/tree/boot/tiny/images`, { recursive: true });
      const loader = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(`${dir}/tree/tftp/undionly.kpxe`, loader);
      await Deno.writeTextFile(`${dir}/tree/boot/tiny/os.toml`, 'title = "Tiny"\n');
      await Deno.writeFile(`${dir}/tree/boot/tiny/images/vmlinuz`, new Uint8Array(4096));
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        serveConfig(
          dir,
          'range = ["10.84.0.100", "10.84.0.120"]',
          `[[machine]]\nmac = "${mac}"\nos = "tiny"\n`,
          80,
        ),
      );
      await Deno.mkdir(`${dir}/data`, { mode: 0o700 });
      await Deno.mkdir(`${dir}/src`);
      await Deno.mkdir(`${dir}/deno`);
      await run(["chown", "-R", `${UID}:${UID}`, `${dir}/data`]);
      await Deno.chmod(dir, 0o755);
      // The checkout and Deno's cache may sit under a folder only root enters (/root): a mount
      // namespace of the server alone shows them under the test's folder.
      const denoDir = JSON.parse((await run([Deno.execPath(), "info", "--json"])).stdout).denoDir;
      const prefix = [
        ...inPrivateMounts(
          'mount --bind "$1" "$3/src" && mount --bind "$2" "$3/deno" && shift 3 && exec "$@"',
          [repoRoot(), denoDir, dir],
        ),
        "setpriv",
        `--reuid=${UID}`,
        `--regid=${UID}`,
        "--clear-groups",
        "--no-new-privs",
        `--bounding-set=-all,${CAPS}`,
        `--inh-caps=-all,${CAPS}`,
        `--ambient-caps=-all,${CAPS}`,
        "env",
        `DENO_DIR=${dir}/deno`,
        `HOME=${dir}/data`,
        "strace",
        "-f",
        "-c",
        "-o",
        `${dir}/data/syscalls`,
      ];
      serve = await startServe(lab.server, dir, {
        prefix,
        flags: RUN_FLAGS,
        script: `${dir}/src/main.ts`,
      });
      const pid = await serverPid(lab.server);

      await t.step("it runs as the user with exactly the two capabilities", async () => {
        const status = await Deno.readTextFile(`/proc/${pid}/status`);
        assert.match(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, "m"));
        // CAP_NET_BIND_SERVICE is bit 10, CAP_NET_RAW bit 13.
        for (const set of ["CapEff", "CapPrm", "CapAmb", "CapBnd"]) {
          assert.match(status, new RegExp(`^${set}:\\s+0000000000002400$`, "m"), set);
        }
        assert.match(status, /^NoNewPrivs:\s+1$/m);
      });

      await t.step("udhcpc gets a lease on port 67", async () => {
        const ip = await udhcpcLease(client, dir, "client");
        assert.ok(ip?.startsWith("10.84.0."), `lease: ${ip}\n${serve!.output}`);
      });

      await t.step("tftp-hpa gets the loader from port 69", async () => {
        const got = `${dir}/got.kpxe`;
        const r = await client.exec(
          ["tftp", "-m", "binary", SERVER_IP, "-c", "get", "undionly.kpxe", got],
          { check: false, timeoutMs: 30_000 },
        );
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.deepEqual(await Deno.readFile(got), loader);
      });

      await t.step("curl gets the machine's boot script from port 80", async () => {
        const url = `http://${SERVER_IP}/boot.ipxe?mac=${mac.replaceAll(":", "-")}`;
        const r = await client.exec(["curl", "-sS", "--max-time", "10", url], { check: false });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^#!ipxe/);
        assert.match(r.stdout, /vmlinuz/);
      });

      await t.step("the router-advertisement socket (raw ICMPv6) opened", () => {
        const ndp = serve!.lines.filter((l) => l.includes('"ndp"'));
        assert.ok(
          ndp.some((l) => l.includes("answering IPv6 router solicitations")),
          ndp.join("\n"),
        );
      });

      await t.step("its data dir holds the database and the admin token, its own", async () => {
        for (const file of ["leases.db", "api-token"]) {
          const st = await Deno.stat(`${dir}/data/${file}`);
          assert.equal(st.uid, UID, file);
        }
        assert.equal((await Deno.stat(`${dir}/data/api-token`)).mode! & 0o777, 0o600);
      });

      await t.step("every system call it made passes the unit's SystemCallFilter", async () => {
        // SIGTERM to the server itself: strace then writes its count and ends.
        Deno.kill(pid, "SIGTERM");
        const status = await serve!.finished(20_000);
        serve = undefined;
        assert.equal(status.code, 0, "a clean stop");
        const counts = await Deno.readTextFile(`${dir}/data/syscalls`);
        const used = [...counts.matchAll(/^\s*[\d.]+\s+.*\s([a-z_0-9]+)$/gm)]
          .map((m) => m[1]!)
          .filter((n) => n !== "total");
        assert.ok(used.includes("bind") && used.includes("setsockopt"), counts);
        const allowed = await allowedByUnit(await Deno.readTextFile(UNIT));
        const refused = used.filter((n) => !allowed.has(n) && !(n in MAY_FAIL));
        assert.deepEqual(refused, [], `not in the unit's filter:\n${counts}`);
        console.log(
          `system calls made: ${used.length}; refused by the filter, harmlessly: ${
            used.filter((n) => n in MAY_FAIL).join(", ") || "none"
          }`,
        );
      });
    } finally {
      await serve?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
