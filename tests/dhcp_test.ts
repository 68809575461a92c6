/**
 * The DHCP server against real clients (busybox udhcpc, ISC dhclient), inside throwaway
 * namespaces: the server runs as a subprocess in its namespace on a bridge, each client in its
 * own namespace. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Netns, vethPair } from "./netns.ts";
import {
  bridgeLab,
  DENO_NS_FLAGS,
  hookEvents,
  hookScript,
  jsonLines,
  LineFollower,
  readEnv,
  spawnDeno,
  startRunner,
  udhcpcBinds,
  until,
} from "./dhcp_harness.ts";

const SERVER_IP = "10.78.0.1";
/** udhcpc in the foreground on eth0, asking for options 66 and 67 too. */
const UDHCPC = "udhcpc -f -i eth0 -O tftp -O bootfile".split(" ");
/** …once: quit when bound (-q), give up after 3 DISCOVERs 2 s apart (-n). */
const UDHCPC_ONCE = [...UDHCPC, ..."-q -n -t 3 -T 2".split(" ")];
const LEASE = 20;

function serverOptions(iface: string, dataDir: string) {
  return {
    interface: iface,
    mode: "server",
    range: ["10.78.0.100", "10.78.0.120"],
    leaseSeconds: LEASE,
    router: "10.78.0.254",
    dns: ["10.78.0.53", "10.78.0.54"],
    domain: "lab.test",
    boot: { httpUrl: `http://${SERVER_IP}:8080` },
    dataDir,
  };
}

/** Server log events (JSON lines with a msg). */
function events(f: LineFollower): { msg: string; [k: string]: unknown }[] {
  return jsonLines(f).filter((l) => typeof l.msg === "string") as {
    msg: string;
    [k: string]: unknown;
  }[];
}

/** Runs udhcpc once (-q: quit when bound, -n: give up after 3 tries) and returns its bound env. */
async function udhcpcOnce(ns: Netns, dir: string, tag: string) {
  const hook = await hookScript(dir, tag);
  const r = await ns.exec(
    [...UDHCPC_ONCE, "-s", hook],
    { check: false, timeoutMs: 60_000 },
  );
  assert.equal(r.code, 0, `udhcpc failed: ${r.stdout}${r.stderr}`);
  return await readEnv(`${dir}/${tag}.bound.env`);
}

async function dhclientConf(dir: string): Promise<string> {
  const path = `${dir}/dhclient.conf`;
  await Deno.writeTextFile(
    path,
    "request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name,\n" +
      "  host-name, tftp-server-name, bootfile-name;\ntimeout 30;\nretry 5;\n",
  );
  return path;
}

/** dhclient with its own script, lease, pid and config files (never the host's). */
function dhclientArgs(dir: string, hook: string, conf: string, extra: string[] = []): string[] {
  const files = ["-sf", hook, "-lf", `${dir}/dhclient.leases`, "-pf", `${dir}/dhclient.pid`];
  return ["dhclient", "-4", "-d", "-v", ...extra, ...files, "-cf", conf, "eth0"];
}

Deno.test("DHCP server hands real clients leases, renews them and keeps them over a restart", async (t) => {
  await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 3);
  const [uc, dc, late] = lab.clients as [Netns, Netns, Netns];
  const dir = await Deno.makeTempDir({ prefix: "abd-dhcp-" });
  const dataDir = `${dir}/data`;
  let server = await startRunner(lab.server, serverOptions("br0", dataDir));
  let udhcpc: LineFollower | undefined;
  let dhclient: Deno.ChildProcess | undefined;
  try {
    let udhcpcIp = "";
    await t.step("udhcpc gets address, mask, router, DNS, domain and bootfile", async () => {
      const hook = await hookScript(dir, "uc");
      udhcpc = new LineFollower(uc.spawn([...UDHCPC, "-t", "5", "-T", "2", "-s", hook]));
      await until(
        async () => (await hookEvents(dir, "uc")).includes("bound") || undefined,
        60_000,
        "udhcpc bound",
      );
      const env = await readEnv(`${dir}/uc.bound.env`);
      udhcpcIp = env.ip!;
      assert.match(udhcpcIp, /^10\.78\.0\.1(0\d|1\d|20)$/);
      assert.equal(env.subnet, "255.255.255.0");
      assert.equal(env.router, "10.78.0.254");
      assert.equal(env.dns?.trim(), "10.78.0.53 10.78.0.54");
      assert.equal(env.domain, "lab.test");
      assert.equal(env.serverid, SERVER_IP);
      assert.equal(env.siaddr, SERVER_IP);
      assert.equal(env.boot_file, "undionly.kpxe");
      assert.equal(env.bootfile, "undionly.kpxe");
      assert.equal(env.tftp, SERVER_IP);
      assert.equal(env.lease, String(LEASE));
      const offer = events(server).find((e) => e.msg.startsWith("DHCPOFFER"));
      assert.equal(offer?.msg, `DHCPOFFER ${udhcpcIp} to ${lab.macs[0]}`);
      assert.equal(offer?.bootfile, "undionly.kpxe");
      assert.equal(offer?.arch, 0);
    });

    await t.step("udhcpc renews on SIGUSR1 with a unicast ACK", async () => {
      const acksBefore = events(server).filter((e) => e.msg.startsWith("DHCPACK")).length;
      udhcpc!.child.kill("SIGUSR1");
      await until(
        async () => (await hookEvents(dir, "uc")).includes("renew") || undefined,
        30_000,
        "udhcpc renew",
      );
      const env = await readEnv(`${dir}/uc.renew.env`);
      assert.equal(env.ip, udhcpcIp);
      // The server's log line may come a moment after the client has its answer.
      const acks = await until(
        () => {
          const now = events(server).filter((e) => e.msg.startsWith("DHCPACK"));
          return now.length > acksBefore ? now : undefined;
        },
        5_000,
        "the renewal's DHCPACK line",
      );
      // A renewing client has its address: the ACK goes to it, not to the broadcast address.
      assert.equal(acks.at(-1)?.dest, `${udhcpcIp}:68`);
    });

    let dhclientIp = "";
    await t.step("dhclient gets its own lease with the same options", async () => {
      const hook = await hookScript(dir, "dc");
      const conf = await dhclientConf(dir);
      const [bin, ...args] = dc.wrap(dhclientArgs(dir, hook, conf));
      dhclient = new Deno.Command(bin!, { args, stdout: "null", stderr: "null" }).spawn();
      await until(
        async () => (await hookEvents(dir, "dc")).includes("BOUND") || undefined,
        60_000,
        "dhclient BOUND",
      );
      const env = await readEnv(`${dir}/dc.BOUND.env`);
      dhclientIp = env.new_ip_address!;
      assert.match(dhclientIp, /^10\.78\.0\.1\d\d$/);
      assert.notEqual(dhclientIp, udhcpcIp);
      assert.equal(env.new_subnet_mask, "255.255.255.0");
      assert.equal(env.new_routers, "10.78.0.254");
      assert.equal(env.new_domain_name_servers, "10.78.0.53 10.78.0.54");
      assert.equal(env.new_domain_name, "lab.test");
      assert.equal(env.new_filename, "undionly.kpxe");
      assert.equal(env.new_bootfile_name, "undionly.kpxe");
      assert.equal(env.new_tftp_server_name, SERVER_IP);
      assert.equal(env.new_next_server, SERVER_IP);
      assert.equal(env.new_dhcp_lease_time, String(LEASE));
    });

    await t.step("dhclient renews by itself at T1", async () => {
      // T1 is half the 20 s lease.
      await until(
        async () => (await hookEvents(dir, "dc")).includes("RENEW") || undefined,
        40_000,
        "dhclient RENEW",
      );
      const env = await readEnv(`${dir}/dc.RENEW.env`);
      assert.equal(env.new_ip_address, dhclientIp);
    });

    await t.step("after a server restart the same clients get the same addresses", async () => {
      udhcpc!.child.kill("SIGTERM");
      await udhcpc!.finished();
      udhcpc = undefined;
      dhclient!.kill("SIGTERM");
      await dhclient!.status;
      dhclient = undefined;
      await server.stop();
      server = await startRunner(lab.server, serverOptions("br0", dataDir));
      await uc.exec(["ip", "addr", "flush", "dev", "eth0"]);
      const env = await udhcpcOnce(uc, dir, "uc2");
      assert.equal(env.ip, udhcpcIp);
      // dhclient remembers its lease: INIT-REBOOT (REQUEST without server id) must be ACKed.
      const hook = await hookScript(dir, "dc2");
      const r = await dc.exec(
        dhclientArgs(dir, hook, await dhclientConf(dir), ["-1"]).filter((a) => a !== "-d"),
        {
          check: false,
          timeoutMs: 60_000,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      const ev = await hookEvents(dir, "dc2");
      const kind = ev.find((e) => e === "REBOOT" || e === "BOUND");
      assert.ok(kind, `dhclient events: ${ev.join(",")}`);
      assert.equal((await readEnv(`${dir}/dc2.${kind}.env`)).new_ip_address, dhclientIp);
      await dc.exec(["sh", "-c", `kill $(cat ${dir}/dhclient.pid) 2>/dev/null; true`]);
    });

    await t.step("garbage does not stop the server; the next client gets a lease", async () => {
      const hostile = [
        "hex:00",
        "hex:" + "ff".repeat(100),
        // A full BOOTP header with a wrong magic cookie.
        "hex:01010600" + "00".repeat(232) + "deadbeef",
        // Right cookie, then option 53 claiming 9 bytes where 1 remains.
        "hex:01010600" + "00".repeat(232) + "63825363" + "3509" + "01",
        // A DISCOVER of 9 944 bytes (Pad to the end): longer than the server reads whole.
        "hex:01010600" + "00".repeat(232) + "63825363" + "350101" + "00".repeat(9700) + "ff",
        "not a dhcp packet at all",
      ];
      for (const h of hostile) {
        const f = spawnDeno(uc, "tests/dhcp_udp_tool.ts", [
          "send",
          "eth0",
          "6800",
          "255.255.255.255",
          "67",
          h,
          "300",
        ]);
        assert.equal((await f.finished(60_000)).code, 0, f.output);
      }
      await until(
        () =>
          events(server).filter((e) => e.msg === "malformed packet dropped").length >=
            hostile.length || undefined,
        20_000,
        "malformed packets logged",
      );
      const env = await udhcpcOnce(late, dir, "late");
      assert.match(env.ip!, /^10\.78\.0\.1\d\d$/);
      assert.notEqual(env.ip, udhcpcIp);
      assert.notEqual(env.ip, dhclientIp);
      assert.ok(!events(server).some((e) => e.level === "error"), server.output);
    });
  } finally {
    try {
      udhcpc?.child.kill("SIGKILL");
    } catch { /* gone */ }
    try {
      dhclient?.kill("SIGKILL");
    } catch { /* gone */ }
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an ACKed lease is on disk before the ACK leaves, and survives kill -9", async (t) => {
  await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 2);
  const [first, second] = lab.clients as [Netns, Netns];
  const dir = await Deno.makeTempDir({ prefix: "abd-dhcp-" });
  const dataDir = `${dir}/data`;
  const trace = `${dir}/strace.txt`;
  // The server's syscalls that matter here, with the file behind each descriptor (-y).
  const prefix = ["strace", "-f", "-y", "-e", "trace=fdatasync,fsync,sendto,sendmmsg", "-o", trace];
  let server: LineFollower | undefined = spawnDeno(
    lab.server,
    "tests/dhcp_runner.ts",
    [JSON.stringify(serverOptions("br0", dataDir))],
    { prefix },
  );
  try {
    await server.waitFor((l) => l.includes('"ready"'), 90_000, "server ready");
    let ip = "";
    await t.step("between the OFFER and the ACK the server fsyncs the lease log", async () => {
      ip = (await udhcpcOnce(first, dir, "a")).ip!;
      const lines = (await Deno.readTextFile(trace)).split("\n");
      // Replies to the client (port 68, a sendmmsg of the turn's replies); not the netlink
      // requests of the interface lookup. strace prints a sendmmsg's messages when it returns:
      // one another thread's call interrupted ends on a "resumed" line, and started on its
      // thread's last "<unfinished" sendmmsg line before it.
      const thread = (l: string) => l.split(" ")[0]!;
      const sends = lines.flatMap((l, i) => {
        if (/\bsend(to|mmsg)\(.*htons\(68\)/.test(l)) return [i];
        if (!/<\.\.\. sendmmsg resumed>.*htons\(68\)/.test(l)) return [];
        const started = lines.findLastIndex((s, j) =>
          j < i && thread(s) === thread(l) && /\bsendmmsg\(.*<unfinished/.test(s)
        );
        return started >= 0 ? [started] : [];
      }).sort((x, y) => x - y);
      assert.ok(sends.length >= 2, lines.join("\n"));
      const ack = sends[1]!;
      const start = lines.findIndex((l, i) =>
        i > sends[0]! && i < ack &&
        /\bf(data)?sync\(\d+<[^>]*leases\.db-wal>(\)| <unfinished)/.test(l)
      );
      assert.ok(start > 0, `no fsync of the WAL between OFFER and ACK:\n${lines.join("\n")}`);
      // Each line starts with its thread. The sync ran on another thread than the one that
      // answers (the event loop, which went on meanwhile), and returned before the ACK left: a
      // call other threads' calls interrupted in strace's log ends on its "resumed" line.
      const tid = thread(lines[start]!);
      assert.notEqual(tid, thread(lines[ack]!), lines.join("\n"));
      const end = lines[start]!.includes("<unfinished")
        ? lines.findIndex((l, i) =>
          i > start && new RegExp(`^${tid}\\s+<\\.\\.\\. f(data)?sync resumed>`).test(l)
        )
        : start;
      assert.ok(end > 0 && end < ack, `the sync returned after the ACK:\n${lines.join("\n")}`);
      assert.match(lines[end]!, /= 0$/, lines.join("\n"));
    });
    await t.step("kill -9 right after the ACK: the lease is in the file", async () => {
      // strace's child is the server (`ip netns exec` and strace exec, they do not fork).
      const children = await Deno.readTextFile(
        `/proc/${server!.child.pid}/task/${server!.child.pid}/children`,
      );
      const pid = Number(children.trim().split(/\s+/)[0]);
      assert.ok(pid > 0, children);
      Deno.kill(pid, "SIGKILL");
      await server!.finished();
      server = undefined;
      const db = new DatabaseSync(`${dataDir}/leases.db`, { readOnly: true });
      try {
        const row = db.prepare("SELECT mac, state FROM dhcp_leases WHERE ip = ?").get(ip);
        assert.deepEqual({ ...row }, { mac: lab.macs[0], state: "bound" });
      } finally {
        db.close();
      }
    });
    await t.step("after a restart the address stays with its client", async () => {
      server = await startRunner(lab.server, serverOptions("br0", dataDir));
      const other = (await udhcpcOnce(second, dir, "b")).ip;
      assert.notEqual(other, ip);
      await first.exec(["ip", "addr", "flush", "dev", "eth0"]);
      assert.equal((await udhcpcOnce(first, dir, "a2")).ip, ip);
    });
  } finally {
    if (server) await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DHCP answers only on its interface", async () => {
  await using srv = await Netns.create("abd");
  await using good = await Netns.create("abd");
  await using other = await Netns.create("abd");
  await vethPair(srv, `${SERVER_IP}/24`, good, null, { a: "eth0", b: "eth0" });
  // eth1 has an address too: a socket that is not bound to eth0 would hear its broadcasts.
  await vethPair(srv, "10.78.1.1/24", other, null, { a: "eth1", b: "eth0" });
  const mac = async (ns: Netns) =>
    (await ns.exec(["cat", "/sys/class/net/eth0/address"])).stdout.trim();
  const goodMac = await mac(good), otherMac = await mac(other);
  const dir = await Deno.makeTempDir({ prefix: "abd-dhcp-" });
  const server = await startRunner(srv, serverOptions("eth0", `${dir}/data`));
  const capture = srv.spawn([
    "tcpdump",
    "-i",
    "eth1",
    "-n",
    "--immediate-mode",
    "-w",
    `${dir}/eth1.pcap`,
    "udp and (port 67 or port 68)",
  ]);
  try {
    // Give tcpdump time to attach before the first DISCOVER (it has no ready signal on -w).
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await udhcpcBinds(other, 3), false, "the client on eth1 must not get a lease");
    const env = await udhcpcOnce(good, dir, "good");
    assert.match(env.ip!, /^10\.78\.0\.1\d\d$/);
  } finally {
    capture.kill("SIGINT");
    await capture.output();
    await server.stop();
  }
  try {
    const read = async (filter: string) =>
      (await srv.exec(["tcpdump", "-r", `${dir}/eth1.pcap`, "-n", filter], { check: false })).stdout
        .split("\n").filter(Boolean);
    const discovers = await read("udp dst port 67");
    const fromServer = await read("udp src port 67");
    assert.ok(discovers.length >= 3, `DISCOVERs on eth1: ${discovers.length}`);
    assert.deepEqual(fromServer, []);
    // The server never even saw the other client.
    assert.ok(!events(server).some((e) => e.mac === otherMac), server.output);
    assert.ok(events(server).some((e) => e.mac === goodMac && e.msg.startsWith("DHCPACK")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts serve wires the DHCP server; astralboot leases lists the lease", async () => {
  await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 1);
  const dir = await Deno.makeTempDir({ prefix: "abd-main-" });
  const config = `${dir}/config.toml`;
  await Deno.writeTextFile(
    config,
    `interface = "br0"
data_dir = "${dir}/data"
[dhcp]
mode = "server"
range = ["10.78.0.100", "10.78.0.120"]
lease = "1h"
router = "10.78.0.254"
dns = ["10.78.0.53"]
domain = "lab.test"
[http]
port = 8080
`,
  );
  const main = new URL("../main.ts", import.meta.url).pathname;
  const tree = new URL("../examples/tree", import.meta.url).pathname;
  const serve = new LineFollower(
    lab.server.spawn([
      "deno",
      "run",
      ...DENO_NS_FLAGS,
      main,
      "serve",
      "-c",
      config,
      "-l",
      tree,
      "--log-format",
      "json",
    ]),
  );
  try {
    await serve.waitFor((l) => l.includes("DHCP listening"), 90_000, "DHCP listening");
    const env = await udhcpcOnce(lab.clients[0]!, dir, "main");
    assert.match(env.ip!, /^10\.78\.0\.1\d\d$/);
    assert.equal(env.siaddr, SERVER_IP);
    assert.equal(env.boot_file, "undionly.kpxe");
    assert.equal(env.domain, "lab.test");
    assert.equal(env.lease, "3600");
    const leases = await lab.server.exec([
      "deno",
      "run",
      ...DENO_NS_FLAGS,
      main,
      "leases",
      "-c",
      config,
    ]);
    const [leaseSection, machineSection] = leases.stdout.split("# machines");
    const row = leaseSection!.split("\n").find((l) => l.includes(lab.macs[0]!));
    assert.ok(row, leases.stdout);
    assert.match(row, new RegExp(`${env.ip!.replaceAll(".", "\\.")}\\s.*bound`));
    // The machine was only ever seen by DHCP, and it is known already.
    const machine = machineSection!.split("\n").find((l) => l.includes(lab.macs[0]!));
    assert.ok(machine, `machine missing after DHCP only:\n${leases.stdout}`);
    assert.ok(machine.includes(env.ip!), machine);
  } finally {
    await serve.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
