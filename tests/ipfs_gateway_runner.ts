/**
 * Serves a folder as a UnixFS tree from a Trustless Gateway on 127.0.0.1:PORT, for tests
 * that need the gateway in another process (inside a lab namespace).
 *
 * Usage: deno run -A tests/ipfs_gateway_runner.ts DIR PORT
 * Prints one JSON line `{"root": CID, "url": …}` when listening; on SIGTERM prints
 * `{"requests": {raw, car, other}}` and exits.
 *
 * @module
 */
import { join, relative } from "node:path";
import { buildTree, type FixtureEntry, TestGateway } from "./ipfs_fixture.ts";

/** Imports a folder as a CIDv1 raw-leaves UnixFS tree; the same folder gives the same root. */
export async function importFolder(dir: string): Promise<Awaited<ReturnType<typeof buildTree>>> {
  return await buildTree(await entries(dir), { profile: "v1-raw" });
}

async function entries(root: string, dir = root): Promise<FixtureEntry[]> {
  const out: FixtureEntry[] = [];
  for await (const e of Deno.readDir(dir)) {
    const abs = join(dir, e.name);
    if (e.isDirectory) out.push(...await entries(root, abs));
    else if (e.isFile) out.push({ path: relative(root, abs), content: await Deno.readFile(abs) });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

if (import.meta.main) {
  const [dir, port] = Deno.args;
  if (!dir || !port) {
    console.error("usage: ipfs_gateway_runner.ts DIR PORT");
    Deno.exit(2);
  }
  const { root, blocks } = await importFolder(dir);
  const gateway = new TestGateway(blocks, Number(port)).start();
  console.log(JSON.stringify({ root: root.toString(), url: gateway.url }));
  Deno.addSignalListener("SIGTERM", async () => {
    console.log(JSON.stringify({ requests: gateway.counts }));
    await gateway.stop();
    Deno.exit(0);
  });
}
