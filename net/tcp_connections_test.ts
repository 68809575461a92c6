import assert from "node:assert/strict";
import {
  listTcpConnections,
  openDescriptors,
  parseTcpTable,
  shutdownSockets,
  socketDescriptors,
} from "./tcp_connections.ts";
import { fdInode } from "./libc.ts";

// Lines read off this machine: a dual-stack listener on :: port 0x8779 with one IPv6 client
// (::1 port 0x9864) and one IPv4 client seen as ::ffff:127.0.0.1; a 127.0.0.1 listener on
// 0x812F with a client, one in CLOSE_WAIT on 0xA7CB, TIME_WAIT and FIN_WAIT2 sockets, and a
// server on 0x9D0F with 3.8 MB of a response queued for a client that reads slowly.
const TCP6 =
  `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:8779 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 113489 1 0000000026884a83 100 0 0 10 0
   1: 00000000000000000000000001000000:9864 00000000000000000000000001000000:8779 01 00000000:00000000 00:00000000 00000000     0        0 113493 2 0000000096b95dbf 20 0 0 10 -1
   2: 00000000000000000000000001000000:8779 00000000000000000000000001000000:9864 01 00000000:00000000 00:00000000 00000000     0        0 113494 1 00000000128ce24f 20 0 0 10 -1
   3: 0000000000000000FFFF00000100007F:8779 0000000000000000FFFF00000100007F:8932 01 00000000:00000000 00:00000000 00000000     0        0 113491 1 00000000aa017488 20 0 0 10 -1
   4: 0000000000000000FFFF00000100007F:8779 B80D0120000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000     0        0 113495 1 00000000aa017489 20 0 0 10 -1
`;
const TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 640 1 00000000414d6997 100 0 0 10 0
   1: 0100007F:812F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 113497 1 00000000cc120ae1 100 0 0 10 0
   6: 0100007F:812F 0100007F:DF44 01 00000000:00000000 00:00000000 00000000     0        0 113499 1 00000000ab5df90a 20 0 0 10 -1
  21: 0100007F:DF44 0100007F:812F 01 00000000:00000000 00:00000000 00000000     0        0 113498 2 00000000fc5422ab 20 0 0 10 -1
  26: 0100007F:8932 0100007F:8779 01 00000000:00000000 00:00000000 00000000     0        0 113490 2 00000000fd329767 20 0 0 10 -1
   6: 0100007F:A7CB 0100007F:9D1C 08 00000000:00000001 00:00000000 00000000     0        0 114024 1 000000007ef5f0a4 20 4 0 10 -1
  19: 0100007F:9D1C 0100007F:A7CB 05 00000000:00000000 03:00001765 00000000     0        0 0 3 00000000b3a40af3
   1: 0100007F:90F9 0100007F:E14C 06 00000000:00000000 03:00000994 00000000     0        0 0 3 00000000eaf717bf
   7: 0A00000B:812F C0A80001:C350 01 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
 813: 0100007F:9D0F 0100007F:E134 01 003A0C00:00000000 04:0000001E 00000000     0        0 145634 2 00000000c21f8e1f 20 4 31 15 -1
   8: garbage
   9: 0100007F:ZZZZ 0100007F:812F 01 00000000:00000000 00:00000000 00000000     0        0 5 2 0
`;

Deno.test("parseTcpTable reads /proc/net/tcp and tcp6", async (t) => {
  const brief = (text: string, port?: number) =>
    parseTcpTable(text, port).map((c) =>
      `${c.inode} ${c.state} ${c.local.address}:${c.local.port} ${c.remote.address}:${c.remote.port}` +
      (c.sendQueue ? ` queued ${c.sendQueue}` : "")
    );
  const cases = [
    {
      name: "IPv6: ::1 as itself, an IPv4-mapped client as plain IPv4, a global address",
      text: TCP6,
      port: 0x8779,
      want: [
        "113494 established ::1:34681 ::1:39012",
        "113491 established 127.0.0.1:34681 127.0.0.1:35122",
        "113495 established 127.0.0.1:34681 2001:db8::1:8080",
      ],
    },
    {
      name: "IPv4 on one port: the server side only, not the client connecting to it",
      text: TCP,
      port: 0x812f,
      want: ["113499 established 127.0.0.1:33071 127.0.0.1:57156"],
    },
    {
      name: "CLOSE_WAIT kept; LISTEN, FIN_WAIT2, TIME_WAIT, inode 0 and garbage skipped",
      text: TCP,
      port: undefined,
      want: [
        "113499 established 127.0.0.1:33071 127.0.0.1:57156",
        "113498 established 127.0.0.1:57156 127.0.0.1:33071",
        "113490 established 127.0.0.1:35122 127.0.0.1:34681",
        "114024 close-wait 127.0.0.1:42955 127.0.0.1:40220",
        "145634 established 127.0.0.1:40207 127.0.0.1:57652 queued 3804160",
      ],
    },
    { name: "empty", text: "", port: 80, want: [] },
  ];
  for (const c of cases) {
    await t.step(c.name, () => assert.deepEqual(brief(c.text, c.port), c.want));
  }
});

/** A loopback listener with one accepted connection. */
async function pair(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = listener.addr.port;
  const client = await Deno.connect({ hostname, port });
  const server = await listener.accept();
  return { listener, port, client, server };
}

Deno.test("the connections of a real listener, shut down by inode", async (t) => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    await t.step(hostname, async () => {
      const p = await pair(hostname);
      try {
        const conns = listTcpConnections(p.port, hostname);
        assert.equal(conns.length, 1);
        const [conn] = conns;
        assert.equal(conn!.remote.port, (p.client.localAddr as Deno.NetAddr).port);
        assert.equal(conn!.remote.address, hostname);
        assert.deepEqual(listTcpConnections(p.port, hostname === "::1" ? "::" : "0.0.0.0"), conns);
        assert.deepEqual(listTcpConnections(p.port, hostname === "::1" ? "::2" : "127.0.0.2"), []);

        const fds = socketDescriptors();
        const fd = fds.get(conn!.inode);
        assert.ok(fd !== undefined, "the accepted socket is one of ours");
        assert.deepEqual(fdInode(fd), { inode: conn!.inode, socket: true });
        // A stale table naming another inode for that descriptor: nothing is done.
        const stale = new Map([[conn!.inode + 1, fd]]);
        assert.deepEqual(shutdownSockets([conn!.inode + 1], stale), new Set());
        assert.deepEqual(shutdownSockets([conn!.inode], fds), new Set([conn!.inode]));
        // The client sees end of file; the server's reads end too, and it still owns the fd.
        assert.equal(await p.client.read(new Uint8Array(10)), null);
        assert.equal(await p.server.read(new Uint8Array(10)), null);
        assert.ok(openDescriptors().has(fd));
      } finally {
        p.client.close();
        p.server.close();
        p.listener.close();
      }
    });
  }
});

Deno.test("openDescriptors sees a descriptor come and go", () => {
  const before = openDescriptors();
  const file = Deno.openSync(new URL(import.meta.url).pathname);
  try {
    const during = openDescriptors();
    const added = [...during].filter(([fd]) => !before.has(fd));
    assert.equal(added.length, 1);
    assert.match(added[0]![1], /tcp_connections_test\.ts$/);
  } finally {
    file.close();
  }
  assert.equal(openDescriptors().size, before.size);
});
