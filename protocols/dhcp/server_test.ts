import assert from "node:assert/strict";
import { memoryLogger } from "../../log.ts";
import { type DhcpServerOptions, probeForServers, type ProbeSocket } from "./server.ts";

/** The options the probe reads, with a short window. */
function options() {
  const logger = memoryLogger();
  const o: DhcpServerOptions = {
    interface: "test0",
    mode: "auto",
    serverIp: "10.0.0.1",
    handler: () => null,
    logger,
    probeSeconds: 0.06,
  };
  return { o, logger };
}

/** A socket whose receive() waits for `next`, then settles as it says; close() ends a wait. */
function fakeSocket(next: () => Promise<null>) {
  const sent: [string, number][] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  const sock: ProbeSocket = {
    send: (_data, address, port) => void sent.push([address, port]),
    receive: () =>
      closed ? Promise.resolve(null) : Promise.race([
        next(),
        new Promise<null>((resolve) => wake = () => resolve(null)),
      ]),
    close: () => {
      closed = true;
      wake?.();
      return Promise.resolve();
    },
  };
  return { sock, sent, closed: () => closed };
}

Deno.test("the probe for other DHCP servers never rejects: a failing socket leaves the server proxy", async (t) => {
  await t.step("nobody answers within the window: null, three DISCOVERs sent", async () => {
    const { o } = options();
    const f = fakeSocket(() => new Promise(() => {}));
    assert.equal(await probeForServers(o, "52:54:00:00:00:01", new Set(), () => f.sock), null);
    assert.deepEqual(f.sent, Array(3).fill(["255.255.255.255", 67]));
    assert.ok(f.closed());
  });
  await t.step("port 68 cannot be opened: why, logged", async () => {
    const { o, logger } = options();
    const got = await probeForServers(o, "52:54:00:00:00:01", new Set(), () => {
      throw new Error("port 68 in use");
    });
    assert.deepEqual(got, { reason: "probe impossible" });
    assert.match(logger.lines[0]!.message, /cannot listen on port 68/);
  });
  await t.step("the socket fails while the probe listens: why, logged, socket closed", async () => {
    const { o, logger } = options();
    const f = fakeSocket(() => Promise.reject(new Error("udp 68 keeps failing")));
    const got = await probeForServers(o, "52:54:00:00:00:01", new Set(), () => f.sock);
    assert.deepEqual(got, { reason: "probe failed" });
    const line = logger.lines.find((l) => l.level === "warn")!;
    assert.match(line.message, /probe for other servers failed; staying proxy/);
    assert.match(String(line.fields.error), /keeps failing/);
    assert.ok(f.closed());
  });
});
