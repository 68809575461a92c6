import assert from "node:assert/strict";
import { ConfigError, formatConfig, loadConfig, parseDuration } from "./config.ts";

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

Deno.test("http connection limits: defaults, durations, and what is refused", async (t) => {
  const load = (toml: string) =>
    loadConfig(`interface = "eth1"\n[http]\n${toml}\n`, { lookup: eth1 });
  const cases = [
    { toml: "", want: [15, 512, 32] },
    { toml: 'idle_timeout = "30s"', want: [30, 512, 32] },
    { toml: 'idle_timeout = "2m"\nmax_connections = 64\nmax_per_client = 64', want: [120, 64, 64] },
    { toml: "idle_timeout = 5\nmax_per_client = 4", want: [5, 512, 4] },
  ];
  for (const c of cases) {
    await t.step(c.toml || "(unset)", () => {
      const h = load(c.toml).http;
      assert.deepEqual([h.idle_timeout, h.max_connections, h.max_per_client], c.want);
      assert.match(formatConfig(load(c.toml)), new RegExp(`^idle_timeout = ${c.want[0]} +# `, "m"));
    });
  }
  const bad: [string, RegExp][] = [
    ["idle_timeout = 0", /:3: http\.idle_timeout: must be positive, got 0/],
    ["idle_timeout = 0.5", /http\.idle_timeout: must be between 1 s and 1 h/],
    ['idle_timeout = "2h"', /http\.idle_timeout: must be between 1 s and 1 h \("1h"\), got 7200 s/],
    ['idle_timeout = "soon"', /http\.idle_timeout: expected seconds or a duration/],
    ["max_connections = 0", /http\.max_connections: must be between 1 and 100000, got 0/],
    ["max_per_client = 1.5", /http\.max_per_client: expected a whole number/],
    [
      "max_connections = 16\nmax_per_client = 32",
      /:4: http\.max_per_client: 32 is more than max_connections \(16\)/,
    ],
  ];
  for (const [toml, expected] of bad) {
    await t.step(toml, () => {
      assert.throws(() => load(toml), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
        assert.match(e.message, expected);
        return true;
      });
    });
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
      "menu_timeout",
      "router_advertisement",
      "idle_timeout",
      "max_connections",
      "max_per_client",
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
