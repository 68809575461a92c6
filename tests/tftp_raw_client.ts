/**
 * Sends hand-made TFTP datagrams and reports the first answer to each; tests run it inside a
 * client namespace. Each datagram goes out from its own fresh port (a new client), so answers
 * cannot mix. A DATA answer (a file was served) is stopped with an ERROR.
 *
 * stdin: `{"server": "10.203.0.1", "port": 69, "waitMs": 3000, "packets": ["0001…", …]}`
 * stdout: `[{"reply": "0005…" | null, "fromPort": 41234 | null}, …]`
 *
 * @module
 */

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));

/** One datagram out, the first answer back (or null after `waitMs`). */
async function ask(
  server: string,
  port: number,
  packet: Uint8Array,
  waitMs: number,
): Promise<{ reply: string | null; fromPort: number | null }> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  try {
    await conn.send(packet, { transport: "udp", hostname: server, port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), waitMs));
    const got = await Promise.race([conn.receive(), timeout]);
    clearTimeout(timer);
    if (!got) return { reply: null, fromPort: null };
    const [data, addr] = got;
    const from = addr as Deno.NetAddr;
    if (data[1] === 3) {
      const stop = new Uint8Array([0, 5, 0, 0, 0]);
      await conn.send(stop, { transport: "udp", hostname: server, port: from.port });
    }
    return { reply: hex(data), fromPort: from.port };
  } finally {
    conn.close();
  }
}

if (import.meta.main) {
  const input = JSON.parse(await new Response(Deno.stdin.readable).text()) as {
    server: string;
    port: number;
    waitMs: number;
    packets: string[];
  };
  const out = [];
  for (const p of input.packets) {
    out.push(await ask(input.server, input.port, unhex(p), input.waitMs));
  }
  console.log(JSON.stringify(out));
}
