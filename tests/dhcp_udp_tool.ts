/**
 * Test helper run inside a namespace (`ip netns exec NS deno run ... tests/dhcp_udp_tool.ts`):
 * drives {@linkcode InterfaceUdpSocket} from a process that lives in the namespace, since
 * the test process itself sits in the host namespace where nothing may be bound.
 *
 *   listen IFACE PORT MS [unicast]   print one JSON line per datagram, echo each back by
 *                               broadcast (or to the sender)
 *   send IFACE PORT DEST DPORT TEXT MS   send TEXT ("hex:0a0b…" for raw bytes), print the
 *                               replies seen within MS
 *   open IFACE                  try to open on port 6767; print the error, exit 2 on failure
 *
 * @module
 */
import { InterfaceUdpSocket } from "../net/udp_socket.ts";

const [mode, iface = "", ...rest] = Deno.args;
const dec = new TextDecoder();
const enc = new TextEncoder();

function out(value: unknown): void {
  Deno.stdout.writeSync(enc.encode(JSON.stringify(value) + "\n"));
}

async function collect(sock: InterfaceUdpSocket, ms: number, onData: (d: unknown) => void) {
  const timer = setTimeout(() => sock.close(), ms);
  for (;;) {
    const d = await sock.receive();
    if (!d) break;
    onData(d);
  }
  clearTimeout(timer);
}

if (mode === "open") {
  try {
    const s = InterfaceUdpSocket.open({ interface: iface, port: 6767 });
    out({ ok: true, address: s.info.address, index: s.info.index });
    await s.close();
  } catch (e) {
    out({ ok: false, error: (e as Error).message });
    Deno.exit(2);
  }
} else if (mode === "listen") {
  const [port, ms] = rest.map(Number);
  const unicast = rest[2] === "unicast";
  const sock = InterfaceUdpSocket.open({ interface: iface, port: port! });
  out({ ready: true, ifindex: sock.info.index });
  await collect(sock, ms!, (d) => {
    const g = d as Awaited<ReturnType<InterfaceUdpSocket["receive"]>> & object;
    const text = dec.decode(g.data);
    out({ from: g.from, ifindex: g.ifindex, to: g.to, text });
    sock.send(
      enc.encode("echo:" + text),
      unicast ? g.from.address : "255.255.255.255",
      g.from.port,
    );
  });
} else if (mode === "send") {
  const [port, dest, dport, text, ms] = rest;
  const sock = InterfaceUdpSocket.open({ interface: iface, port: Number(port) });
  // "hex:…" sends raw bytes (hostile packets), anything else as UTF-8 text.
  const payload = text!.startsWith("hex:")
    ? Uint8Array.from(text!.slice(4).match(/../g) ?? [], (h) => parseInt(h, 16))
    : enc.encode(text!);
  sock.send(payload, dest!, Number(dport));
  await collect(sock, Number(ms), (d) => {
    const g = d as Awaited<ReturnType<InterfaceUdpSocket["receive"]>> & object;
    out({ from: g.from, text: dec.decode(g.data), hex: hexOf(g.data) });
  });
} else {
  out({ ok: false, error: `unknown mode ${mode}` });
  Deno.exit(1);
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
