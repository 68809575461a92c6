import assert from "node:assert/strict";
import { ConfigError, formatConfig, loadConfig, parseByteSize, parseDuration } from "./config.ts";

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
secure_boot = true
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
  assert.equal(c.boot.secure_boot, true);
  assert.deepEqual(c.machines, [{
    mac: "52:54:00:aa:bb:cc",
    hostname: "node1",
    ip: "10.0.0.50",
    os: "debian",
    class: "k8s-node",
    vars: { disk: "/dev/vda" },
  }]);
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
      /machine\.mac: every \[\[machine\]\] needs mac/,
    ],
    [`interface = "eth1"\n[[machine]]\nmac = "zz"\n`, /machine\.mac: not a MAC address/],
    [
      `interface = "eth1"\n[[machine]]\nmac = "52:54:00:00:00:01"\n[[machine]]\nmac = "52:54:00:00:00:01"\n`,
      /appears in two/,
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
      "secure_boot",
      "router_advertisement",
      "mac",
    ]
  ) {
    assert.match(text, new RegExp(`^(# )?${key} = .+ # \\S`, "m"), key);
  }
  const again = loadConfig(text, { lookup: eth1 });
  // The same values; only where they were set differs (every key is in the file now).
  assert.deepEqual(
    {
      ...again,
      machines: again.machines.map((m) => ({ ...m, vars: { a: Number(m.vars.a) } })),
      sources: c.sources,
    },
    c,
  );
  assert.match(text, /^interface = "eth1" +# .* \[config\.toml:1\]$/m);
  assert.match(text, /^default = "tiny" +# .* \[config\.toml:3\]$/m);
  assert.match(text, /^port = 80 +# HTTP port for scripts, menus and images$/m);
});

Deno.test("ASTRALBOOT_<SECTION>_<KEY> overrides the file and says so", async (t) => {
  const file = `interface = "eth1"\n[http]\nport = 8080\n`;
  await t.step("typed like TOML, else a string; the source is shown", () => {
    const c = loadConfig(file, {
      lookup: eth1,
      env: {
        ASTRALBOOT_HTTP_PORT: "8081",
        ASTRALBOOT_DHCP_MODE: "proxy",
        ASTRALBOOT_DHCP_DNS: '["10.0.0.53", "10.0.0.54"]',
        ASTRALBOOT_DHCP_LEASE: "1h",
        ASTRALBOOT_DHCP_KNOWN_ONLY: "true",
        ASTRALBOOT_LOG_LEVEL: "debug",
        PATH: "/usr/bin",
      },
    });
    assert.equal(c.http.port, 8081);
    assert.equal(c.dhcp.mode, "proxy");
    assert.deepEqual(c.dhcp.dns, ["10.0.0.53", "10.0.0.54"]);
    assert.equal(c.dhcp.lease, 3600);
    assert.equal(c.dhcp.known_only, true);
    assert.equal(c.log_level, "debug");
    assert.equal(c.sources["http.port"], "$ASTRALBOOT_HTTP_PORT");
    assert.equal(c.sources["interface"], "config.toml:1");
    const text = formatConfig(c);
    assert.match(text, /^port = 8081 +# .* \[\$ASTRALBOOT_HTTP_PORT\]$/m);
    assert.match(text, /^mode = "proxy" +# .* \[\$ASTRALBOOT_DHCP_MODE\]$/m);
  });
  await t.step("a top-level key: ASTRALBOOT_<KEY>", () => {
    const c = loadConfig("", { lookup: eth1, env: { ASTRALBOOT_INTERFACE: "eth1" } });
    assert.equal(c.server_ip, "10.0.0.1");
  });
  const bad: [Record<string, string>, RegExp][] = [
    [{ ASTRALBOOT_HTTP_PROT: "1" }, /^ASTRALBOOT_HTTP_PROT: no config key has this name/],
    [{ ASTRALBOOT_HTTP: "1" }, /^ASTRALBOOT_HTTP: no config key/],
    [{ ASTRALBOOT_MACHINE_MAC: "x" }, /^ASTRALBOOT_MACHINE_MAC: no config key/],
    [
      { ASTRALBOOT_HTTP_PORT: "70000" },
      /^ASTRALBOOT_HTTP_PORT: http\.port: must be between 1 and 65535/,
    ],
    [{ ASTRALBOOT_DHCP_MODE: "sometimes" }, /^ASTRALBOOT_DHCP_MODE: dhcp\.mode: must be one of/],
  ];
  for (const [env, message] of bad) {
    await t.step(`${Object.keys(env)[0]}: one clear error`, () => {
      assert.throws(() => loadConfig(file, { lookup: eth1, env }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("durations", () => {
  assert.equal(parseDuration("24h"), 86400);
  assert.equal(parseDuration("1d2h"), 93600);
  assert.equal(parseDuration("90"), 90);
  assert.equal(parseDuration("h"), null);
  assert.equal(parseDuration("5x"), null);
});
