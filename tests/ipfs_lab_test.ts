/**
 * The lab boots from IPFS: the fixture tree imported as UnixFS, served by a trustless gateway,
 * Astral Boot started with `ref` and no `-l`. Then, after `astralboot fetch` into a fresh
 * cache, the gateway is stopped and the VM boots from the cache alone.
 */
import assert from "node:assert/strict";
import { buildFixture, MARKER } from "../lab/fixture.ts";
import { runLab } from "../lab/lab.ts";
import {
  astralbootCommand,
  labConfig,
  type LabServer,
  readLines,
  spawnAll,
} from "../lab/servers.ts";
import { formatStages } from "../lab/stages.ts";
import { silentLogger } from "../log.ts";
import { run } from "./netns.ts";
import { TestGateway } from "./ipfs_fixture.ts";
import { importFolder } from "./ipfs_gateway_runner.ts";

const GATEWAY_PORT = 18080;
const RUNNER = new URL("./ipfs_gateway_runner.ts", import.meta.url).pathname;

function ipfsConfig(ref: string, dataDir: string, lab: string, gateway: string): string {
  return `ref = ${JSON.stringify(ref)}\n` +
    lab.replace(/^data_dir = .*$/m, `data_dir = ${JSON.stringify(dataDir)}`) +
    `\n[ipfs]\ngateways = [${JSON.stringify(gateway)}]\ntimeout = 10\n`;
}

/** Astral Boot serving `ref`, its cache in `dataDir`; with `gatewayTree`, a gateway beside it. */
function ipfsServer(
  o: { ref: string; dataDir: string; gatewayTree?: string },
): LabServer & { gatewayLog: string[] } {
  const gatewayLog: string[] = [];
  return {
    name: "astralboot-ipfs",
    httpPort: 80,
    gatewayLog,
    async start(ctx) {
      let gateway: Deno.ChildProcess | undefined;
      let gatewayDone = Promise.resolve();
      if (o.gatewayTree) {
        // In the lab namespace, on its loopback, as a local Kubo gateway would be.
        gateway = ctx.ns.spawn([
          Deno.execPath(),
          "run",
          "-A",
          RUNNER,
          o.gatewayTree,
          String(GATEWAY_PORT),
        ]);
        let firstLine: (line: string) => void = () => {};
        const ready = new Promise<string>((resolve) => firstLine = resolve);
        gatewayDone = readLines(gateway.stdout, (line) => {
          gatewayLog.push(line);
          firstLine(line);
        });
        readLines(gateway.stderr, (line) => gatewayLog.push(line));
        assert.equal(
          JSON.parse(await ready).root,
          o.ref,
          "the gateway serves the tree the test imported",
        );
      }
      const config = `${ctx.workDir}/config.toml`;
      const lab = labConfig(ctx, { httpPort: 80, os: "tiny", logLevel: "info" });
      await Deno.writeTextFile(
        config,
        ipfsConfig(o.ref, o.dataDir, lab, `http://127.0.0.1:${GATEWAY_PORT}`),
      );
      const server = spawnAll(ctx.ns, [{
        tag: "astralboot",
        // Reads: its config and its cache only; no boot tree folder at all.
        argv: [
          ...astralbootCommand({ read: [ctx.workDir, o.dataDir], write: [o.dataDir] }),
          "serve",
          "-c",
          config,
          "--log-format",
          "json",
        ],
      }]);
      if (!gateway) return server;
      const gw = gateway;
      return {
        lines: server.lines,
        exited: server.exited,
        async stop() {
          await server.stop();
          gw.kill("SIGTERM");
          await gw.status;
          await gatewayDone;
        },
      };
    },
  };
}

Deno.test("lab: a VM boots with kernel and initrd fetched from IPFS, and from the cache after the gateway is gone", async () => {
  const fixture = await buildFixture({ logger: silentLogger });
  const { root, blocks } = await importFolder(fixture.tree);
  const ref = root.toString();
  const coldDir = await Deno.makeTempDir({ prefix: "abipfs-cold-" });
  const warmDir = await Deno.makeTempDir({ prefix: "abipfs-warm-" });
  try {
    const cold = ipfsServer({ ref, dataDir: coldDir, gatewayTree: fixture.tree });
    const first = await runLab({
      firmware: "bios",
      sga: false,
      nic: "virtio-net-pci",
      tree: fixture.tree,
      server: cold,
      timeoutMs: 150_000,
      logger: silentLogger,
    });
    console.log(`from IPFS through the gateway:\n${formatStages(first.stages)}`);
    assert.ok(first.ok, `${first.error}\n${first.serverLog.slice(-20).join("\n")}`);
    assert.ok(first.serial.includes(MARKER));
    const counts = JSON.parse(
      cold.gatewayLog.findLast((l) => l.includes('"requests"')) ?? "{}",
    ).requests;
    assert.ok(counts.raw + counts.car > 0, `the gateway served nothing: ${JSON.stringify(counts)}`);
    assert.equal(counts.other, 0, "only trustless requests (format=raw or car)");
    assert.ok(
      [...Deno.readDirSync(`${coldDir}/cache/files`)].length >= 2,
      "kernel and initrd cached",
    );

    // Prefetch into a fresh cache from a gateway on the host's loopback, then stop it.
    const gateway = new TestGateway(blocks).start();
    const config = `${warmDir}/config.toml`;
    await Deno.writeTextFile(
      config,
      ipfsConfig(ref, warmDir, `interface = "lo"\ndata_dir = ""\n`, gateway.url),
    );
    const fetched = await run([...astralbootCommand(), "fetch", "-c", config], {
      check: false,
      timeoutMs: 120_000,
    });
    await gateway.stop();
    assert.equal(fetched.code, 0, fetched.stderr + fetched.stdout);
    assert.match(fetched.stderr + fetched.stdout, /files?/);

    const offline = ipfsServer({ ref, dataDir: warmDir });
    const second = await runLab({
      firmware: "bios",
      sga: false,
      nic: "virtio-net-pci",
      tree: fixture.tree,
      server: offline,
      timeoutMs: 150_000,
      logger: silentLogger,
    });
    console.log(`from the prefetched cache, no gateway:\n${formatStages(second.stages)}`);
    assert.ok(second.ok, `${second.error}\n${second.serverLog.slice(-20).join("\n")}`);
    assert.ok(second.serial.includes(MARKER));
  } finally {
    await Deno.remove(coldDir, { recursive: true }).catch(() => {});
    await Deno.remove(warmDir, { recursive: true }).catch(() => {});
  }
});
