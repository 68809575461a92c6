import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { addressBookFor, forgetStrangers, openStore } from "./serve.ts";
import { tftpOpener } from "./tftp_open.ts";
import { createLeasePools } from "./dhcp.ts";
import { openDatabase } from "../state/db.ts";
import { Subnet } from "../net/ipv4.ts";
import { mustParseMac } from "../net/mac.ts";
import { testApp } from "../http/_test_utils.ts";
import { memoryLogger, silentLogger } from "../log.ts";
import type { IpfsEvent } from "../ipfs/events.ts";

/** A config whose only gateway is a closed port on loopback. */
function deadGateway(dataDir: string, more = "") {
  // Bind a port, then free it: nothing listens there any more.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return loadConfig(
    `ref = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
interface = "lo"
server_ip = "127.0.0.1"
data_dir = "${dataDir}"
[ipfs]
gateways = ["http://127.0.0.1:${port}"]
timeout = 2
${more}
`,
    { file: "test.toml" },
  );
}

Deno.test("with every IPFS gateway down: HTTP 503 and TFTP error 0, each saying why", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "astral-ipfs-down-" });
  const config = deadGateway(dir);
  const tree = await openStore(config, undefined, silentLogger);
  try {
    await t.step("/image/<os>/<file> answers 503 naming the CID and the gateway", async () => {
      const { text } = testApp({ store: tree.store });
      const res = await text("/image/debian/linux");
      assert.equal(res.status, 503);
      assert.match(res.body, /^Cannot read "boot\/debian\/images\/linux" of bafy\w+: /);
      assert.match(res.body, new RegExp(config.ipfs.gateways[0]!.replaceAll(".", "\\.")));
    });
    await t.step("a TFTP request is refused as unavailable (error 0) with the reason", async () => {
      const got = await tftpOpener(tree.store)("undionly.kpxe", { address: "10.0.0.5", port: 2 });
      assert.ok("error" in got);
      assert.equal(got.error, "unavailable");
      assert.match(got.message, /Cannot read "tftp\/undionly\.kpxe"/);
    });
    await t.step("a path the store refuses is a TFTP access violation, not a crash", async () => {
      const got = await tftpOpener(tree.store)("../etc/passwd", { address: "10.0.0.5", port: 2 });
      assert.deepEqual(got, { error: "forbidden", message: "access violation" });
    });
  } finally {
    await tree.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the IPFS store of serve holds its cache to cache_max from the start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "astral-ipfs-gc-" });
  const events: IpfsEvent[] = [];
  const tree = await openStore(
    deadGateway(dir, 'cache_max = "500MiB"'),
    undefined,
    silentLogger,
    (e) => {
      events.push(e);
    },
  );
  try {
    const until = Date.now() + 5000;
    while (!events.some((e) => e.kind === "cache-gc") && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const gc = events.find((e) => e.kind === "cache-gc");
    assert.equal(gc?.kind === "cache-gc" && gc.maxBytes, 500 * 2 ** 20);
  } finally {
    await tree.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the address book knows the leases of every subnet, relayed ones too", () => {
  const config = loadConfig(
    `interface = "br0"
server_ip = "10.0.0.1"
netmask = "255.255.255.0"
[[dhcp.subnet]]
network = "10.9.0.0/24"
router = "10.9.0.1"
`,
    { file: "test.toml" },
  );
  const pools = createLeasePools(openDatabase(":memory:"), {
    range: config.dhcp.range,
    serverIp: config.server_ip,
    subnet: Subnet.of(config.server_ip, config.netmask),
    subnets: config.dhcp.subnets.map((s) => ({ ...s, subnet: Subnet.parse(s.network) })),
  });
  const near = mustParseMac("52:54:00:00:00:01");
  const far = mustParseMac("52:54:00:00:00:02");
  for (
    const [mac, store] of [[near, pools.pools[0]!.store], [far, pools.pools[1]!.store]] as const
  ) {
    const got = store.offer(mac);
    assert.ok("ip" in got);
    assert.equal(store.commit(mac, got.ip, 60).ok, true);
  }
  const book = addressBookFor(config, pools);
  assert.equal(book.leaseOf(near), "10.0.0.2");
  assert.equal(book.leaseOf(far), "10.9.0.2");
  assert.equal(book.leaseAt("10.9.0.2"), far);
  assert.equal(book.leaseAt("10.0.0.2"), near);
});

Deno.test("the lease pools log a lease row the database refused, an offer's too", () => {
  const db = openDatabase(":memory:");
  const logger = memoryLogger();
  const pools = createLeasePools(db, {
    range: ["10.0.0.100", "10.0.0.110"],
    serverIp: "10.0.0.1",
    subnet: Subnet.of("10.0.0.1", "255.255.255.0"),
    logger,
  });
  db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON dhcp_leases
    BEGIN SELECT RAISE(ABORT, 'no new rows'); END`);
  const store = pools.pools[0]!.store;
  // Nobody waits for an offer: the log is where its refusal shows.
  assert.ok("ip" in store.offer(mustParseMac("52:54:00:00:00:01")));
  store.flush();
  const line = logger.lines.find((l) => l.message.startsWith("lease row refused"));
  assert.equal(line?.level, "warn");
  assert.equal(line?.fields?.ip, "10.0.0.100");
  assert.match(String(line?.fields?.error), /no new rows/);
  db.close();
});

Deno.test("forgetting strangers logs what went, and a database that fails it is logged, not thrown", () => {
  const logger = memoryLogger();
  const asked: [number, number][] = [];
  forgetStrangers(
    { prune: (before, keep) => (asked.push([before, keep]), 2) },
    logger,
    40 * 86_400_000,
  );
  assert.deepEqual(asked, [[10 * 86_400_000, 10_000]]);
  assert.deepEqual(logger.lines.map((l) => [l.level, l.message, l.fields.machines]), [
    ["info", "forgot machines nobody configured", 2],
  ]);
  const held = memoryLogger();
  forgetStrangers({
    prune: () => {
      throw new Error("database is locked");
    },
  }, held);
  assert.equal(held.lines.length, 1);
  assert.equal(held.lines[0]!.level, "warn");
  assert.match(String(held.lines[0]!.fields.error), /database is locked/);
});
