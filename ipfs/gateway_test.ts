import assert from "node:assert/strict";
import { CID } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import { memoryLogger } from "../log.ts";
import { GatewayClient, GatewayError } from "./gateway.ts";
import { buildTree, keyOf, pseudoRandomBytes, TestGateway } from "../tests/ipfs_fixture.ts";

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
