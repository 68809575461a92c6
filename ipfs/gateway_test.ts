import assert from "node:assert/strict";
import { CID } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import { memoryLogger } from "../log.ts";
import type { IpfsEvent } from "./events.ts";
import { CarLimitError, GatewayClient, GatewayError } from "./gateway.ts";
import {
  buildTree,
  carHeader,
  carSection,
  fakeGateway,
  fetchOf,
  keyOf,
  pseudoRandomBytes,
  pulledStream,
  TestGateway,
} from "../tests/ipfs_fixture.ts";

async function fixture() {
  const content = pseudoRandomBytes(600_000, 11);
  const { blocks, cids } = await buildTree([{ path: "f", content }], { profile: "v1-raw" });
  return { blocks, file: cids.get("f")! };
}

/** A port on 127.0.0.1 with nothing listening. */
async function deadUrl(): Promise<string> {
  const { blocks } = await fixture();
  const g = new TestGateway(blocks).start();
  const url = g.url;
  await g.stop();
  return url;
}

Deno.test("GatewayClient fails over in order and remembers failing gateways", async (t) => {
  const { blocks, file } = await fixture();
  const good = new TestGateway(blocks).start();
  const bad = new TestGateway(blocks).start();
  const dead = await deadUrl();
  try {
    await t.step("a down gateway is skipped, then tried last", async () => {
      const logger = memoryLogger();
      const client = new GatewayClient({ gateways: [dead, good.url], timeoutMs: 2000, logger });
      const bytes = await client.getBlock(file);
      assert.deepEqual(bytes, blocks.get(file));
      assert.deepEqual(client.order(), [good.url, dead]);
      assert.ok(logger.lines.some((l) => l.level === "warn" && l.fields.gateway === dead));
      // After the penalty the configured order comes back.
      assert.deepEqual(client.order(Date.now() + 61_000), [dead, good.url]);
    });
    await t.step("a gateway serving bad bytes is passed over", async () => {
      bad.knobs.corrupt.add(keyOf(file));
      const client = new GatewayClient({ gateways: [bad.url, good.url], timeoutMs: 2000 });
      assert.deepEqual(await client.getBlock(file), blocks.get(file));
      assert.equal(client.isFailing(bad.url), true);
    });
    await t.step("all failing: one error naming the CID and every gateway", async () => {
      const client = new GatewayClient({ gateways: [dead, bad.url], timeoutMs: 2000 });
      await assert.rejects(client.getBlock(file), (err: Error) => {
        assert.ok(err instanceof GatewayError);
        assert.match(err.message, new RegExp(file.toString()));
        assert.ok(err.message.includes(dead) && err.message.includes(bad.url), err.message);
        assert.match(err.message, /failed verification/);
        return true;
      });
    });
    await t.step("a gateway given as …/ipfs/ names the same root", async () => {
      const client = new GatewayClient({ gateways: [` ${good.url}/ipfs/`], timeoutMs: 2000 });
      assert.deepEqual(client.gateways, [good.url]);
      assert.deepEqual(await client.getBlock(file), blocks.get(file));
    });
    await t.step("a 404 fails over without marking the gateway as failing", async () => {
      const missing = CID.createV1(0x55, await sha256.digest(new Uint8Array([1, 2, 3])));
      const client = new GatewayClient({ gateways: [good.url], timeoutMs: 2000 });
      await assert.rejects(client.getBlock(missing), /404/);
      assert.equal(client.isFailing(good.url), false);
    });
    await t.step("a slow gateway times out", async () => {
      bad.knobs.corrupt.clear();
      bad.knobs.delayMs = 1500;
      const client = new GatewayClient({ gateways: [bad.url, good.url], timeoutMs: 200 });
      assert.deepEqual(await client.getBlock(file), blocks.get(file));
      assert.equal(client.isFailing(bad.url), true);
      bad.knobs.delayMs = 0;
    });
  } finally {
    await good.stop();
    await bad.stop();
  }
});

Deno.test("GatewayClient refuses blocks over 2 MiB without reading them whole", async () => {
  let sent = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 8 * 1024 * 1024) return c.close();
        sent += 65536;
        c.enqueue(new Uint8Array(65536));
      },
    });
    return new Response(body, { headers: { "content-type": "application/vnd.ipld.raw" } });
  });
  try {
    const cid = CID.createV1(0x55, await sha256.digest(new Uint8Array(3 * 1024 * 1024)));
    const client = new GatewayClient({
      gateways: [`http://127.0.0.1:${server.addr.port}`],
      timeoutMs: 5000,
    });
    await assert.rejects(client.getBlock(cid), /over the 2097152-byte limit/);
    assert.ok(sent < 8 * 1024 * 1024, `server sent ${sent} bytes`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("GatewayClient CAR: verified blocks, refusals remembered", async (t) => {
  const { blocks, file } = await fixture();
  const gw = new TestGateway(blocks).start();
  try {
    await t.step("entity CAR yields the file's blocks, verified", async () => {
      const client = new GatewayClient({ gateways: [gw.url], timeoutMs: 2000 });
      const wanted = new Set(blocks.dfs(file, "all").map((b) => keyOf(b.cid)));
      let n = 0;
      for await (const b of client.streamCar(file, "entity", (c) => wanted.has(keyOf(c)))) {
        assert.deepEqual(b.bytes, blocks.get(b.cid));
        n++;
      }
      assert.equal(n, wanted.size);
    });
    for (const status of [406, 501]) {
      await t.step(`HTTP ${status}: no blocks, and CAR is not asked again`, async () => {
        gw.knobs.refuseCar = status;
        const client = new GatewayClient({ gateways: [gw.url], timeoutMs: 2000 });
        for (let i = 0; i < 2; i++) {
          for await (const _ of client.streamCar(file, "entity", () => true)) {
            assert.fail("no block expected");
          }
        }
        assert.equal(client.stats.carRequests, 1);
        assert.equal(client.isFailing(gw.url), false);
        gw.knobs.refuseCar = undefined;
      });
    }
    await t.step("a stalled CAR stream is abandoned after the idle timeout", async () => {
      const client = new GatewayClient({ gateways: [gw.url], timeoutMs: 200 });
      gw.knobs.carChunkDelayMs = 3000;
      const started = performance.now();
      let n = 0;
      try {
        // The first 64 KiB hold the file's root node: it arrives, then the stream stalls.
        await assert.rejects(async () => {
          for await (const _ of client.streamCar(file, "entity", () => true)) n++;
        }, /stalled/);
        assert.equal(n, 1);
      } finally {
        gw.knobs.carChunkDelayMs = undefined;
      }
      assert.ok(performance.now() - started < 2500, "gave up long before the stall ended");
      assert.equal(client.isFailing(gw.url), true);
    });
  } finally {
    await gw.stop();
  }
});

Deno.test("GatewayClient bounds a raw block body that trickles forever", async (t) => {
  const { blocks, file } = await fixture();
  const TIMEOUT = 500;
  // One byte every 50 ms, never the end: always busy, never done.
  const trickle = () => pulledStream(() => new Uint8Array([0]), 50);
  const cases: {
    name: string;
    gateways: () => Promise<{ urls: string[]; fetch?: typeof fetch; done(): Promise<void> }>;
  }[] = [
    {
      name: "a fetch that ignores the abort signal",
      gateways: () => {
        const bad = fakeGateway("http://bad.test", blocks, { raw: trickle });
        const good = fakeGateway("http://good.test", blocks);
        return Promise.resolve({
          urls: [bad.base, good.base],
          fetch: fetchOf(bad, good),
          done: () => Promise.resolve(),
        });
      },
    },
    {
      name: "a real server on 127.0.0.1",
      gateways: () => {
        const bad = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          () =>
            new Response(trickle(), { headers: { "content-type": "application/vnd.ipld.raw" } }),
        );
        const good = new TestGateway(blocks).start();
        return Promise.resolve({
          urls: [`http://127.0.0.1:${bad.addr.port}`, good.url],
          done: async () => {
            await good.stop();
            await bad.shutdown();
          },
        });
      },
    },
    {
      name: "a fetch whose headers never come",
      gateways: () => {
        const good = fakeGateway("http://good.test", blocks);
        const hang =
          ((input: string | URL | Request, init?: RequestInit) =>
            String(input).startsWith("http://hang.test/")
              ? new Promise<Response>(() => {})
              : good.fetch(input, init)) as typeof fetch;
        return Promise.resolve({
          urls: ["http://hang.test", good.base],
          fetch: hang,
          done: () => Promise.resolve(),
        });
      },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const gw = await c.gateways();
      try {
        const client = new GatewayClient({
          gateways: gw.urls,
          timeoutMs: TIMEOUT,
          fetch: gw.fetch,
        });
        const started = performance.now();
        assert.deepEqual(await client.getBlock(file), blocks.get(file));
        const ms = performance.now() - started;
        // Within its timeout, give or take the scheduling of a busy machine.
        assert.ok(ms < 2 * TIMEOUT, `took ${Math.round(ms)} ms, timeout ${TIMEOUT} ms`);
        assert.ok(ms >= TIMEOUT - 50, `gave up after ${Math.round(ms)} ms, before the timeout`);
        assert.equal(client.isFailing(gw.urls[0]!), true);
        assert.deepEqual(client.order(), [gw.urls[1], gw.urls[0]]);
      } finally {
        await gw.done();
      }
    });
  }
});

Deno.test("GatewayClient CAR limits: byte budget and deadline stop the response", async (t) => {
  const { blocks, file } = await fixture();
  const header = await carHeader(file);
  const root = carSection(file, blocks.get(file)!);
  // The file's root node, again and again: valid, verified, endless.
  const repeating = () => pulledStream((i) => i === 0 ? header : root);
  const slowly = () => pulledStream((i) => i === 0 ? header : root, 20);
  const cases = [
    { name: "budget", body: repeating, limits: { maxBytes: 200_000 }, error: /200000-byte budget/ },
    { name: "deadline", body: slowly, limits: { deadlineMs: 300 }, error: /300 ms deadline/ },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const gw = fakeGateway("http://gw.test", blocks, { car: c.body });
      const events: IpfsEvent[] = [];
      const client = new GatewayClient({
        gateways: [gw.base],
        timeoutMs: 5000,
        fetch: fetchOf(gw),
        onEvent: (e) => events.push(e),
      });
      const started = performance.now();
      let n = 0;
      await assert.rejects(async () => {
        for await (const _ of client.streamCar(file, "entity", () => true, undefined, c.limits)) {
          n++;
        }
      }, (err: Error) => {
        assert.ok(err instanceof CarLimitError, String(err));
        assert.match(err.message, c.error);
        return true;
      });
      assert.ok(n > 0);
      assert.ok(performance.now() - started < 1000);
      // Its CARs are refused for a while; its blocks are still welcome.
      assert.equal(client.isFailing(gw.base), false);
      for await (const _ of client.streamCar(file, "entity", () => true)) assert.fail("no CAR");
      assert.equal(gw.counts.car, 1);
      assert.deepEqual(await client.getBlock(file), blocks.get(file));
      assert.deepEqual(events.map((e) => e.kind), ["gateway-failure"]);
    });
  }
});

Deno.test("GatewayClient refuses a hash it cannot check before asking any gateway", async () => {
  const { blocks } = await fixture();
  const gw = new TestGateway(blocks).start();
  try {
    // blake2b-256 (0xb220) over raw: well-formed, but not a hash this server verifies.
    const digest = new Uint8Array(32).fill(7);
    const cid = CID.createV1(0x55, {
      code: 0xb220,
      digest,
      size: 32,
      bytes: Uint8Array.of(0xa0, 0xe4, 0x02, 32, ...digest),
    });
    const client = new GatewayClient({ gateways: [gw.url], timeoutMs: 2000 });
    await assert.rejects(client.getBlock(cid), (e: Error) => e.name === "UnsupportedCidError");
    assert.equal(client.isFailing(gw.url), false);
    assert.equal(client.stats.blockRequests, 0);
  } finally {
    await gw.stop();
  }
});
