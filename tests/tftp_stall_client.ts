/**
 * An attacker on the boot link, for the fairness test; run inside a client namespace. Opens
 * `count` sockets on `bind` (one address, many ports) and sends from each a read request with
 * `timeout 255` that it never acknowledges, again every `everyMs` for `seconds` (a transfer the
 * server gave up on is asked for anew). Prints one JSON line when done: what came back.
 *
 * ```
 * deno run --unstable-net -A tests/tftp_stall_client.ts --server 10.203.0.1 --bind 10.203.0.3 \
 *   --file boot.bin [--count 300] [--seconds 20] [--every-ms 500]
 * ```
 *
 * @module
 */

function flag(name: string, fallback?: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  const v = i >= 0 ? Deno.args[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

/** `RRQ file octet tsize 0 blksize 1468 timeout 255`. */
function request(file: string): Uint8Array {
  const parts = [file, "octet", "tsize", "0", "blksize", "1468", "timeout", "255"];
  const body = new TextEncoder().encode(parts.map((p) => `${p}\0`).join(""));
  const out = new Uint8Array(2 + body.length);
  out[1] = 1;
  out.set(body, 2);
  return out;
}

if (import.meta.main) {
  const server = flag("server");
  const bind = flag("bind");
  // Bounded whatever the arguments say: this floods on purpose.
  const count = Math.min(1000, Number(flag("count", "300")));
  const seconds = Math.min(120, Number(flag("seconds", "20")));
  const everyMs = Math.max(100, Number(flag("every-ms", "500")));
  const rrq = request(flag("file"));
  const to = { transport: "udp" as const, hostname: server, port: 69 };
  const sockets = Array.from(
    { length: count },
    () => Deno.listenDatagram({ transport: "udp", hostname: bind, port: 0 }),
  );
  const seen = { requests: 0, oack: 0, data: 0, errors: {} as Record<string, number> };
  /** Server transfer ports (TIDs) that answered, per second since the start. */
  const tids = new Set<number>();
  const receivers = sockets.map(async (s) => {
    for (;;) {
      let got;
      try {
        got = await s.receive();
      } catch {
        return; // closed
      }
      const [data, addr] = got;
      tids.add((addr as Deno.NetAddr).port);
      const op = (data[0]! << 8) | data[1]!;
      if (op === 6) seen.oack++;
      else if (op === 3) seen.data++;
      else if (op === 5) {
        const message = new TextDecoder().decode(data.subarray(4, data.indexOf(0, 4)));
        seen.errors[message] = (seen.errors[message] ?? 0) + 1;
      }
    }
  });
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await Promise.all(sockets.map((s) => s.send(rrq, to).then(() => seen.requests++)));
    await new Promise((r) => setTimeout(r, everyMs));
  }
  for (const s of sockets) s.close();
  await Promise.all(receivers);
  console.log(JSON.stringify({ ...seen, sockets: count, serverPorts: tids.size }));
}
