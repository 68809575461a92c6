import assert from "node:assert/strict";
import { ConfigError, formatConfig, loadConfig, parseByteSize, parseDuration } from "./config.ts";

const UUID = "12345678-9abc-def0-1122-334455667788";

const eth1 = (name: string) =>
  name === "eth1" ? { name, address: "10.0.0.1", netmask: "255.255.255.0" } : null;

Deno.test("the original minimal config works and derives everything from the interface", () => {
  const c = loadConfig(
    `ref = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"\ninterface = "eth1"\n`,
    { lookup: eth1 },
  );
  assert.equal(c.server_ip, "10.0.0.1");
  assert.equal(c.netmask, "255.255.255.0");
  assert.deepEqual(c.dhcp.range, ["10.0.0.1", "10.0.0.254"]);
  assert.equal(c.dhcp.mode, "server");
  assert.equal(c.dhcp.lease, 86400);
  assert.equal(c.http.public_url, "http://10.0.0.1");
  assert.equal(c.db_file, "/var/lib/astralboot/leases.db");
  assert.equal(c.tftp.max_blksize, 1468);
  assert.equal(c.tftp.max_per_client, 4);
  assert.equal(c.dhcp.router_advertisement, true);
});

Deno.test("dhcp.router_advertisement: a boolean, default true", async (t) => {
  const cases = [
    { toml: "", want: true },
    { toml: "router_advertisement = true", want: true },
    { toml: "router_advertisement = false", want: false },
  ];
  for (const c of cases) {
    await t.step(c.toml || "(unset)", () => {
      const config = loadConfig(`interface = "eth1"\n[dhcp]\n${c.toml}\n`, { lookup: eth1 });
      assert.equal(config.dhcp.router_advertisement, c.want);
      assert.match(formatConfig(config), new RegExp(`^router_advertisement = ${c.want} +# `, "m"));
    });
  }
});

Deno.test("ipfs.cache_max: bytes or a size with a unit, default 10GiB, 0 for no limit", async (t) => {
  const cases: { toml: string; want: number; printed: string }[] = [
    { toml: "", want: 10 * 2 ** 30, printed: '"10GiB"' },
    { toml: 'cache_max = "10GiB"', want: 10 * 2 ** 30, printed: '"10GiB"' },
    { toml: 'cache_max = "500MiB"', want: 500 * 2 ** 20, printed: '"500MiB"' },
    { toml: 'cache_max = "2GB"', want: 2e9, printed: '"2GB"' },
    { toml: 'cache_max = "1.5 GiB"', want: 1.5 * 2 ** 30, printed: '"1536MiB"' },
    { toml: 'cache_max = "64kib"', want: 65536, printed: '"64KiB"' },
    { toml: "cache_max = 1000000", want: 1_000_000, printed: '"1MB"' },
    { toml: "cache_max = 1000001", want: 1_000_001, printed: "1000001" },
    { toml: 'cache_max = "4096"', want: 4096, printed: '"4KiB"' },
    { toml: "cache_max = 0", want: 0, printed: "0" },
  ];
  for (const c of cases) {
    await t.step(c.toml || "(unset)", () => {
      const config = loadConfig(`interface = "eth1"\n[ipfs]\n${c.toml}\n`, { lookup: eth1 });
      assert.equal(config.ipfs.cache_max, c.want);
      const text = formatConfig(config);
      assert.match(text, new RegExp(`^cache_max = ${c.printed} +# \\S`, "m"));
      assert.equal(loadConfig(text, { lookup: eth1 }).ipfs.cache_max, c.want);
    });
  }
});

Deno.test("parseByteSize", () => {
  assert.equal(parseByteSize("10GiB"), 10 * 2 ** 30);
  assert.equal(parseByteSize(" 500 MiB "), 500 * 2 ** 20);
  assert.equal(parseByteSize("1kB"), 1000);
  assert.equal(parseByteSize("7B"), 7);
  assert.equal(parseByteSize("7"), 7);
  for (const bad of ["", "GiB", "10 GiBs", "-1GiB", "10G", "1e9", "ten MiB", "5 MiB 3"]) {
    assert.equal(parseByteSize(bad), null, bad);
  }
});

Deno.test("the original capitalised keys are accepted as aliases", () => {
  const c = loadConfig(
    `interface = "eth1"\nGateway = "10.0.0.254"\nDNSServer = "10.0.0.53"\nDomain = "lab"\nDBname = "/tmp/x.db"\n`,
    { lookup: eth1 },
  );
  assert.equal(c.dhcp.router, "10.0.0.254");
  assert.deepEqual(c.dhcp.dns, ["10.0.0.53"]);
  assert.equal(c.dhcp.domain, "lab");
  assert.equal(c.db_file, "/tmp/x.db");
});

Deno.test("full config: every section read", () => {
  const c = loadConfig(
    `interface = "eth1"
data_dir = "/srv/ab"
[dhcp]
mode = "proxy"
range = ["10.0.0.100", "10.0.0.200"]
lease = "1h30m"
dns = ["1.1.1.1", "9.9.9.9"]
[tftp]
port = 1069
max_per_client = 8
[http]
port = 8080
[ipfs]
gateways = ["http://127.0.0.1:8080/", "https://gw.example"]
timeout = "5s"
[boot]
default = "debian"
menu_timeout = 3
[[machine]]
mac = "52-54-00-AA-BB-CC"
hostname = "node1"
ip = "10.0.0.50"
os = "debian"
class = "k8s-node"
vars = { disk = "/dev/vda" }
`,
    { lookup: eth1 },
  );
  assert.equal(c.dhcp.mode, "proxy");
  assert.equal(c.dhcp.lease, 5400);
  assert.deepEqual(c.ipfs.gateways, ["http://127.0.0.1:8080", "https://gw.example"]);
  assert.equal(c.ipfs.timeout, 5);
  assert.equal(c.http.public_url, "http://10.0.0.1:8080");
  assert.equal(c.tftp.port, 1069);
  assert.equal(c.tftp.max_per_client, 8);
  assert.equal(c.boot.default, "debian");
  assert.deepEqual(c.machines, [{
    mac: "52:54:00:aa:bb:cc",
    hostname: "node1",
    ip: "10.0.0.50",
    os: "debian",
    class: "k8s-node",
    vars: { disk: "/dev/vda" },
  }]);
});

Deno.test("a [[machine]] is named by mac, by uuid or by both; the UUID canonical", async (t) => {
  const table: [string, string, Record<string, string>][] = [
    ["mac only", `mac = "52-54-00-AA-BB-01"`, { mac: "52:54:00:aa:bb:01" }],
    ["uuid only, upper case", `uuid = "${UUID.toUpperCase()}"`, { uuid: UUID }],
    ["uuid without hyphens", `uuid = "${UUID.replaceAll("-", "")}"`, { uuid: UUID }],
    [
      "both",
      `mac = "52:54:00:aa:bb:02"\nuuid = "{${UUID}}"`,
      { mac: "52:54:00:aa:bb:02", uuid: UUID },
    ],
  ];
  for (const [name, keys, want] of table) {
    await t.step(name, () => {
      const c = loadConfig(`interface = "eth1"\n[[machine]]\n${keys}\nos = "tiny"\n`, {
        lookup: eth1,
      });
      const unset = { hostname: undefined, ip: undefined, class: undefined };
      assert.deepEqual(c.machines, [{ ...want, ...unset, os: "tiny", vars: {} }]);
      // The implied config prints what names it, and reads back the same.
      const again = loadConfig(formatConfig(c), { lookup: eth1 });
      assert.deepEqual(again.machines, c.machines);
    });
  }
});

Deno.test("the README's config examples load as they are", () => {
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 2, "README has its toml examples");
  for (const block of blocks) {
    const c = loadConfig(
      block.replace(/"bafy…"/, '"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"'),
      {
        lookup: eth1,
      },
    );
    assert.equal(c.interface, "eth1");
  }
  const fuller = loadConfig(blocks.find((b) => b.includes("known_only"))!, { lookup: eth1 });
  assert.equal(fuller.dhcp.known_only, false);
  assert.equal(fuller.dhcp.new_client_rate, 10);
  assert.equal(fuller.api.token_file, "/var/lib/astralboot/api-token");
});

Deno.test("bad config: one clear error naming the key, its line and what is allowed", async (t) => {
  const cases: [string, RegExp][] = [
    [
      `interface = "eth1"\n[dhcp]\nmode = "yes"\n`,
      /config\.toml:3: dhcp\.mode: must be one of "server", "proxy", "auto", "off"/,
    ],
    [
      `interface = "eth1"\n[tftp]\nport = 70000\n`,
      /:3: tftp\.port: must be between 1 and 65535, got 70000/,
    ],
    [
      `interface = "eth1"\n[tftp]\nmax_per_client = 0\n`,
      /:3: tftp\.max_per_client: must be between 1 and 256, got 0/,
    ],
    [
      `interface = "eth1"\n[tftp]\nmax_per_client = 1000\n`,
      /:3: tftp\.max_per_client: must be between 1 and 256, got 1000/,
    ],
    [
      `interface = "eth1"\nrouter = "1.2.3.4"\n`,
      /:2: router: unknown key; allowed: ref, interface/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nrange = ["10.0.0.9", "10.0.0.2"]\n`,
      /dhcp\.range: first address 10\.0\.0\.9 is after last/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nrange = ["192.168.1.2", "192.168.1.9"]\n`,
      /not inside this interface's subnet/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nrouter = "10.0.0.300"\n`,
      /dhcp\.router: expected an IPv4 address/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nlease = "forever"\n`,
      /dhcp\.lease: expected seconds or a duration/,
    ],
    [`interface = "eth1"\nref = "hello"\n`, /:2: ref: not a CID/],
    [
      `interface = "eth1"\n[[machine]]\nhostname = "x"\n`,
      /machine\.mac: every \[\[machine\]\] needs mac = "52:54:00:12:34:56", uuid = "…" \(the SMBIOS UUID it reports\), or both/,
    ],
    [`interface = "eth1"\n[[machine]]\nmac = "zz"\n`, /machine\.mac: not a MAC address/],
    [
      `interface = "eth1"\n[[machine]]\nmac = "52:54:00:00:00:01"\n[[machine]]\nmac = "52:54:00:00:00:01"\n`,
      /appears in two/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nuuid = "not-a-uuid"\n`,
      /:3: machine\.uuid: not a UUID: "not-a-uuid" \(expected 8-4-4-4-12 hex digits/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nuuid = "00000000-0000-0000-0000-000000000000"\n`,
      /machine\.uuid: not a UUID: .*the nil UUID means "none"/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nuuid = "${UUID}"\n[[machine]]\nuuid = "${UUID.toUpperCase()}"\n`,
      /machine\.uuid: 12345678-9abc-def0-1122-334455667788 appears in two/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nuuid = "${UUID}"\nip = "10.0.0.50"\n`,
      /:4: machine\.ip: a reservation needs mac/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nknown_only = true\n[[machine]]\nuuid = "${UUID}"\n`,
      /:5: machine\.uuid: with \[dhcp\] known_only = true a \[\[machine\]\] without mac gets no address/,
    ],
    [`interface = "eth1"\nGateway = "10.0.0.2"\n[dhcp]\nrouter = "10.0.0.3"\n`, /given twice/],
    [`interface = "eth1"\n[dhcp\n`, /config\.toml:2:\d+: cannot parse TOML/],
    [
      `interface = "eth1"\n[dhcp]\nrouter_advertisement = "yes"\n`,
      /:3: dhcp\.router_advertisement: expected true or false, got string "yes"/,
    ],
    [`interface = "eth9"\n`, /interface "eth9" has no IPv4 address/],
    [``, /interface: not set/],
    [
      `interface = "eth1"\n[ipfs]\ngateways = ["ftp://x"]\n`,
      /ipfs\.gateways: expected http\(s\) URLs/,
    ],
    [
      `interface = "eth1"\n[ipfs]\ncache_max = "lots"\n`,
      /^config\.toml:3: ipfs\.cache_max: expected bytes as a whole number or a size like "10GiB", "500MiB", "2GB", got string "lots"$/,
    ],
    [
      `interface = "eth1"\n[ipfs]\ntimeout = 5\ncache_max = "10 GiBs"\n`,
      /^config\.toml:4: ipfs\.cache_max: .* got string "10 GiBs"$/,
    ],
    [`interface = "eth1"\n[ipfs]\ncache_max = -1\n`, /:3: ipfs\.cache_max: .* got number -1$/],
    [`interface = "eth1"\n[ipfs]\ncache_max = 1.5\n`, /:3: ipfs\.cache_max: .* got number 1\.5$/],
    [`interface = "eth1"\n[ipfs]\ncache_max = "10G"\n`, /:3: ipfs\.cache_max: .*"10G"$/],
    [`interface = "eth1"\n[ipfs]\ncache_max = true\n`, /:3: ipfs\.cache_max: .* got boolean true$/],
  ];
  for (const [source, expected] of cases) {
    await t.step(expected.source, () => {
      assert.throws(() => loadConfig(source, { lookup: eth1 }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
        assert.match(e.message, expected);
        return true;
      });
    });
  }
});

Deno.test("formatConfig prints every key with a comment and parses back to the same config", () => {
  const c = loadConfig(
    `interface = "eth1"\n[boot]\ndefault = "tiny"\n[[machine]]\nmac = "52:54:00:00:00:01"\nvars = { a = 1 }\n`,
    {
      lookup: eth1,
    },
  );
  const text = formatConfig(c);
  for (
    const key of [
      "interface",
      "data_dir",
      "mode",
      "range",
      "lease",
      "port",
      "gateways",
      "cache_max",
      "menu_timeout",
      "router_advertisement",
      "mac",
    ]
  ) {
    assert.match(text, new RegExp(`^(# )?${key} = .+ # \\S`, "m"), key);
  }
  const again = loadConfig(text, { lookup: eth1 });
  assert.deepEqual(
    { ...again, machines: again.machines.map((m) => ({ ...m, vars: { a: Number(m.vars.a) } })) },
    c,
  );
});

Deno.test("durations", () => {
  assert.equal(parseDuration("24h"), 86400);
  assert.equal(parseDuration("1d2h"), 93600);
  assert.equal(parseDuration("90"), 90);
  assert.equal(parseDuration("h"), null);
  assert.equal(parseDuration("5x"), null);
});
