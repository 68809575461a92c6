/**
 * `auto` and `proxy` mode beside another DHCP server (dnsmasq), all inside namespaces.
 */
import assert from "node:assert/strict";
import { INVENTORY_QUERY } from "../boot/inventory.ts";
import type { Netns } from "./netns.ts";
import {
  bridgeLab,
  hookScript,
  jsonLines,
  type LineFollower,
  readEnv,
  spawnDeno,
  startRunner,
  udhcpcBinds,
} from "./dhcp_harness.ts";
import { decodeDhcp, type DhcpPacket, encodeDhcp } from "../protocols/dhcp/packet.ts";
import { DhcpOption, MessageType } from "../protocols/dhcp/options.ts";

const SERVER_IP = "10.79.0.1";
const OTHER_IP = "10.79.0.2";
const TESTDATA = new URL("../protocols/dhcp/testdata/", import.meta.url);
const HTTP = `http://${SERVER_IP}:8080`;

function options(mode: string, dataDir: string, probeSeconds = 2) {
  return {
    interface: "br0",
    mode,
    range: ["10.79.0.100", "10.79.0.120"],
    leaseSeconds: 60,
    router: SERVER_IP,
    dns: [SERVER_IP],
    boot: { httpUrl: HTTP },
    dataDir,
    probeSeconds,
  };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Sends `packet` from the client's port 68 and returns the DHCP replies seen within `ms`. */
async function exchange(
  ns: Netns,
  packet: DhcpPacket,
  dest: string,
  port: number,
  ms = 3000,
): Promise<{ from: string; p: DhcpPacket }[]> {
  const f = spawnDeno(ns, "tests/dhcp_udp_tool.ts", [
    "send",
    "eth0",
    "68",
    dest,
    String(port),
    "hex:" + hex(encodeDhcp(packet)),
    String(ms),
  ]);
  assert.equal((await f.finished(60_000)).code, 0, f.output);
  // Broadcast replies to other clients reach port 68 too: keep only answers to this packet.
  return jsonLines(f).map((l) => ({
    from: (l.from as { address: string }).address,
    p: decodeDhcp(Uint8Array.from((l.hex as string).match(/../g)!, (h) => parseInt(h, 16))),
  })).filter((r) => r.p.xid === packet.xid);
}

/** A captured firmware request with this client's MAC and the given changes. */
function request(name: string, mac: string, fields: Partial<DhcpPacket> = {}): DhcpPacket {
  const p = decodeDhcp(Deno.readFileSync(new URL(`${name}.bin`, TESTDATA)));
  return { ...p, chaddr: Uint8Array.from(mac.split(":"), (h) => parseInt(h, 16)), ...fields };
}

Deno.test("auto mode beside dnsmasq becomes ProxyDHCP", async (t) => {
  await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 3);
  const [other, pxe, plain] = lab.clients as [Netns, Netns, Netns];
  const dir = await Deno.makeTempDir({ prefix: "abd-proxy-" });
  await other.exec(["ip", "addr", "add", `${OTHER_IP}/24`, "dev", "eth0"]);
  await pxe.exec(["ip", "addr", "add", "10.79.0.50/24", "dev", "eth0"]);
  const dnsmasq = other.spawn([
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--port=0",
    "--user=root",
    "--interface=eth0",
    "--bind-interfaces",
    // Without the ~3 s ping before each new address, reply times do not depend on load.
    "--no-ping",
    "--dhcp-range=10.79.0.150,10.79.0.160,120",
    `--dhcp-leasefile=${dir}/dnsmasq.leases`,
    `--pid-file=${dir}/dnsmasq.pid`,
  ]);
  let server: LineFollower | undefined;
  try {
    // dnsmasq is ready when a plain client gets a lease from it.
    const hook = await hookScript(dir, "plain");
    const r = await plain.exec(
      ["udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i", "eth0", "-s", hook],
      { check: false, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await readEnv(`${dir}/plain.bound.env`)).serverid, OTHER_IP);

    // The default probe window (6 s), as in production.
    server = await startRunner(lab.server, options("auto", `${dir}/data`, 6));
    const s = server;
    await t.step("the probe sees dnsmasq's OFFER and the server stays proxy", async () => {
      const line = await s.waitFor(
        (l) => l.includes("proxy mode from now on") || l.includes("serving addresses"),
        30_000,
        "auto decision",
      );
      assert.match(line, /another DHCP server answered our probe/);
      assert.match(line, new RegExp(OTHER_IP.replaceAll(".", "\\.")));
    });

    await t.step("a PXE DISCOVER gets dnsmasq's address and our boot-only offer", async () => {
      const replies = await exchange(
        pxe,
        request("ovmf_discover", lab.macs[1]!),
        "255.255.255.255",
        67,
      );
      const ours = replies.filter((r) => r.from === SERVER_IP).map((r) => r.p);
      const theirs = replies.filter((r) => r.from === OTHER_IP).map((r) => r.p);
      assert.equal(theirs.length, 1);
      assert.match(theirs[0]!.yiaddr, /^10\.79\.0\.1[56]\d$/);
      assert.equal(ours.length, 1, JSON.stringify(replies.map((r) => r.from)));
      const offer = ours[0]!;
      assert.equal(offer.options.messageType(), MessageType.Offer);
      assert.equal(offer.yiaddr, "0.0.0.0");
      assert.equal(offer.siaddr, SERVER_IP);
      assert.equal(offer.file, "snponly.efi");
      assert.equal(offer.options.vendorClass(), "PXEClient");
      assert.equal(offer.options.has(DhcpOption.LeaseTime), false);
    });

    await t.step("a plain client gets nothing from us", async () => {
      // The broadcast flag makes dnsmasq's OFFER reach our tool, which lacks the offered address.
      const req = request("udhcpc_discover", lab.macs[1]!, { flags: 0x8000 });
      const replies = await exchange(pxe, req, "255.255.255.255", 67);
      assert.deepEqual(replies.filter((r) => r.from === SERVER_IP), []);
      assert.ok(replies.some((r) => r.from === OTHER_IP));
    });

    await t.step("iPXE's ProxyDHCPREQUEST on port 4011 is ACKed with the script", async () => {
      const req = request("ipxe_efi_request", lab.macs[1]!, { ciaddr: "10.79.0.50" });
      req.options.delete(DhcpOption.RequestedIP);
      req.options.setIp(DhcpOption.ServerId, SERVER_IP);
      const replies = await exchange(pxe, req, SERVER_IP, 4011);
      assert.equal(replies.length, 1);
      const ack = replies[0]!.p;
      assert.equal(ack.options.messageType(), MessageType.Ack);
      assert.equal(ack.yiaddr, "0.0.0.0");
      // Too long for the file field with what iPXE is asked to report: option 67 alone.
      assert.equal(ack.file, "");
      assert.equal(
        ack.options.string(DhcpOption.BootfileName),
        `${HTTP}/boot.ipxe?mac=${lab.macs[1]!.replaceAll(":", "-")}${INVENTORY_QUERY}`,
      );
    });

    await t.step("the server never offered an address", async () => {
      await s.stop();
      const offers = jsonLines(s).filter((l) => /^DHCP(OFFER|ACK)/.test(String(l.msg)));
      assert.deepEqual(offers, []);
      assert.ok(!jsonLines(s).some((l) => l.level === "error"), s.output);
    });
  } finally {
    await server?.stop();
    dnsmasq.kill("SIGTERM");
    await dnsmasq.output();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auto mode alone serves addresses, and yields when a client picks another server", async (t) => {
  await using lab = await bridgeLab("abd", `${SERVER_IP}/24`, 2);
  const [first, second] = lab.clients as [Netns, Netns];
  const dir = await Deno.makeTempDir({ prefix: "abd-auto-" });
  const // dnsmasq pings an address ~3 s before it offers it (docs/FIRMWARE.md): the probe must outlast that.
  server = await startRunner(lab.server, options("auto", `${dir}/data`, 6));
  try {
    await t.step("nobody answers the probe: serving addresses", async () => {
      await server.waitFor((l) => l.includes("serving addresses"), 30_000, "server mode");
      const hook = await hookScript(dir, "first");
      const r = await first.exec(
        ["udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i", "eth0", "-s", hook],
        { check: false, timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const env = await readEnv(`${dir}/first.bound.env`);
      assert.equal(env.serverid, SERVER_IP);
      assert.match(env.ip!, /^10\.79\.0\.1[0-2]\d$/);
    });
    await t.step("a REQUEST naming another server switches to proxy for good", async () => {
      // udhcpc_request names server 10.77.0.1: some other DHCP server made this client an offer.
      const req = request("udhcpc_request", lab.macs[1]!);
      await second.exec(["ip", "addr", "add", "10.79.0.51/24", "dev", "eth0"]);
      const replies = await exchange(second, req, "255.255.255.255", 67, 1000);
      assert.deepEqual(replies.filter((r) => r.from === SERVER_IP), []);
      await server.waitFor((l) => l.includes("proxy mode from now on"), 10_000, "switch to proxy");
      await second.exec(["ip", "addr", "flush", "dev", "eth0"]);
      assert.equal(await udhcpcBinds(second), false, "no address once proxy");
    });
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auto mode: a client that chooses another server while the probe listens keeps it proxy", async () => {
  await using lab = await bridgeLab("abe", `${SERVER_IP}/24`, 2);
  const [first, second] = lab.clients as [Netns, Netns];
  const dir = await Deno.makeTempDir({ prefix: "abe-auto-" });
  // Nobody answers this probe: only the client's choice can keep the server proxy.
  const server = await startRunner(lab.server, options("auto", `${dir}/data`, 8));
  try {
    // udhcpc_request names server 10.77.0.1: some other DHCP server made this client an offer.
    const req = request("udhcpc_request", lab.macs[1]!);
    await second.exec(["ip", "addr", "add", "10.79.0.51/24", "dev", "eth0"]);
    const replies = await exchange(second, req, "255.255.255.255", 67, 1000);
    assert.deepEqual(replies.filter((r) => r.from === SERVER_IP), []);
    const line = await server.waitFor(
      (l) => l.includes("proxy mode from now on") || l.includes("serving addresses"),
      30_000,
      "the probe's decision",
    );
    assert.match(line, /a client chose it during the probe/);
    assert.match(line, /10\.77\.0\.1/);
    // Another client then gets no address from it.
    assert.equal(await udhcpcBinds(first), false, "no address from a server that stayed proxy");
    assert.ok(!server.lines.some((l) => l.includes("serving addresses")), server.output);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
