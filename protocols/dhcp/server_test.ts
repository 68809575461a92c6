import assert from "node:assert/strict";
import { memoryLogger } from "../../log.ts";
import {
  type DhcpServerOptions,
  modeAfterProbe,
  probeForServers,
  type ProbeSocket,
} from "./server.ts";

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

Deno.test("auto mode hands out addresses only when the probe found nobody and no client chose another", async (t) => {
  const other = { server: "10.0.0.2", offered: "10.0.0.77" };
  const chose = { server: "10.0.0.3" };
  const cases: [
    string,
    Parameters<typeof modeAfterProbe>[0],
    boolean,
    object | null,
    string,
    RegExp | null,
  ][] = [
    ["nobody answered", null, false, null, "server", /no other DHCP server answered/],
    ["another server offered", other, false, null, "proxy", /answered our probe/],
    [
      "a client chose another server meanwhile",
      null,
      false,
      chose,
      "proxy",
      /a client chose it during the probe/,
    ],
    [
      "the probe could not be made (it logged why)",
      { reason: "probe failed" },
      false,
      null,
      "proxy",
      null,
    ],
    ["closing", null, true, null, "proxy", null],
  ];
  for (const [name, found, closing, chosenElsewhere, mode, line] of cases) {
    await t.step(name, () => {
      const logger = memoryLogger();
      const got = modeAfterProbe(found, logger, {
        closing,
        chosenElsewhere: chosenElsewhere as Record<string, unknown> | null,
      });
      assert.equal(got, mode);
      if (line) assert.match(logger.lines[0]!.message, line);
      else assert.deepEqual(logger.lines, []);
    });
  }
});
