/**
 * IPFS content benchmark: cold fetch throughput from a local Trustless Gateway (127.0.0.1)
 * into the cache, with CAR and with single blocks, and warm serve throughput from the cache.
 *
 * Run alone: `deno run --unstable-net -A tests/bench/ipfs.ts [sizeMiB]`.
 *
 * @module
 */

import { join } from "node:path";
import { IpfsStore } from "../../ipfs/store.ts";
import { buildTree, pseudoRandomBytes, tempDir, TestGateway } from "../ipfs_fixture.ts";

/** One measured figure. */
export interface IpfsBenchResult {
  name: string;
  bytes: number;
  seconds: number;
  mbPerSecond: number;
}

/** Options for {@linkcode benchIpfs}. */
export interface IpfsBenchOptions {
  /** File size in MiB; default 64. */
  sizeMiB?: number;
  /** Warm reads to take the median of; default 5. */
  warmRuns?: number;
  /** Where lines go; default stdout. */
  print?: (line: string) => void;
}

/** Runs the benchmark and prints one line per figure (MB/s, 1 MB = 10^6 bytes). */
export async function benchIpfs(options: IpfsBenchOptions = {}): Promise<IpfsBenchResult[]> {
  const size = (options.sizeMiB ?? 64) * 1024 * 1024;
  const print = options.print ?? ((line: string) => console.log(line));
  const content = pseudoRandomBytes(size, 42);
  const results: IpfsBenchResult[] = [];
  const tmp = await tempDir("ipfs_bench_");
  const gateways: TestGateway[] = [];
  try {
    for (const profile of ["v1-raw", "kubo-v0"] as const) {
      const { root, blocks, cids } = await buildTree([{ path: "images/big.img", content }], {
        profile,
      });
      const gw = new TestGateway(blocks).start();
      gateways.push(gw);
      // Let the fixture gateway build its CAR once, outside the timed runs.
      const file = cids.get("images/big.img")!;
      await (await fetch(`${gw.url}/ipfs/${file}?format=car&dag-scope=entity`)).arrayBuffer();
      for (const car of [true, false]) {
        const store = new IpfsStore({
          ref: root.toString(),
          gateways: [gw.url],
          timeoutMs: 10_000,
          cacheDir: join(tmp.path, `${profile}-${car}`),
          car,
        });
        await store.stat("images/big.img");
        const cold = await time(() => drain(store.read("images/big.img"), size));
        results.push(result(`ipfs cold fetch ${profile} ${car ? "CAR" : "blocks"}`, size, cold));
        print(formatLine(results.at(-1)!));
        if (car) {
          const runs: number[] = [];
          for (let i = 0; i < (options.warmRuns ?? 5); i++) {
            runs.push(await time(() => drain(store.read("images/big.img"), size)));
          }
          runs.sort((a, b) => a - b);
          results.push(result(`ipfs warm serve ${profile}`, size, runs[runs.length >> 1]!));
          print(formatLine(results.at(-1)!));
        }
        await store.close();
      }
    }
  } finally {
    for (const g of gateways) await g.stop();
    await tmp.remove();
  }
  return results;
}

async function drain(stream: Promise<ReadableStream<Uint8Array>>, expected: number) {
  let n = 0;
  for await (const chunk of await stream) n += chunk.length;
  if (n !== expected) throw new Error(`read ${n} bytes, expected ${expected}`);
}

async function time(run: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await run();
  return (performance.now() - t0) / 1000;
}

function result(name: string, bytes: number, seconds: number): IpfsBenchResult {
  return { name, bytes, seconds, mbPerSecond: bytes / 1e6 / seconds };
}

function formatLine(r: IpfsBenchResult): string {
  const mib = (r.bytes / 1024 / 1024).toFixed(0);
  return `${r.name}: ${r.mbPerSecond.toFixed(1)} MB/s (${mib} MiB in ${r.seconds.toFixed(2)} s)`;
}

if (import.meta.main) {
  const size = Number(Deno.args[0] ?? "64");
  await benchIpfs({ sizeMiB: Number.isFinite(size) && size > 0 ? size : 64 });
}
