/**
 * One QEMU `guestfwd` connection relayed to the HTTP server on loopback: QEMU runs this per
 * guest TCP connection with the connection on stdin/stdout. `restrict=on` keeps the VM off
 * every other network, so the only way out is this pipe to 127.0.0.1:<port>.
 *
 * Usage: deno run --allow-net tests/http_guestfwd_relay.ts PORT
 */
const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });
const up = Deno.stdin.readable.pipeTo(conn.writable, { preventClose: true })
  .then(() => conn.closeWrite())
  .catch(() => {});
await conn.readable.pipeTo(Deno.stdout.writable).catch(() => {});
await up;
