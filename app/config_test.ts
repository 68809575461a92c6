import assert from "node:assert/strict";
import { ConfigError, formatConfig, loadConfig, parseByteSize, parseDuration } from "./config.ts";
import { knownOptions } from "../protocols/dhcp/option_table.ts";

const UUID = "12345678-9abc-def0-1122-334455667788";

const eth1 = (name: string) =>
  name === "eth1" ? { name, address: "10.0.0.1", netmask: "255.255.255.0" } : null;

/** The printed config without the `[config.toml:N]` source notes, for tests about comments. */
function withoutSources(text: string): string {
  return text.replace(/ \[[^\]\n]+\]$/gm, "");
}

/** A config without where its values came from: printed and read back, only those differ. */
function sameValues(c: ReturnType<typeof loadConfig>) {
  return { ...c, sources: {}, origins: {} };
}

/** Loading `source` fails with one ConfigError whose message matches `expected`. */
function assertConfigError(source: string, expected: RegExp): void {
  assert.throws(() => loadConfig(source, { lookup: eth1 }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.match(e.message, expected);
    return true;
  });
}

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

Deno.test("tftp.max_blksize: one frame of the interface's MTU by default, and says so", async (t) => {
  const withMtu = (mtu: number | undefined) => (name: string) =>
    name === "eth1" ? { name, address: "10.0.0.1", netmask: "255.255.255.0", mtu } : null;
  const cases = [
    { name: "Ethernet", toml: "", mtu: 1500, want: 1468, origin: /MTU 1500 of eth1 minus 32/ },
    { name: "jumbo frames", toml: "", mtu: 9000, want: 8968, origin: /MTU 9000 of eth1/ },
    {
      name: "loopback: capped at RFC 2348's largest",
      toml: "",
      mtu: 65536,
      want: 65464,
      origin: /MTU 65536 of eth1 minus 32 .*, capped at 65464/,
    },
    { name: "MTU unknown", toml: "", mtu: undefined, want: 1468, origin: /unknown, 1500/ },
    {
      name: "given: no origin",
      toml: 'server_ip = "10.0.0.1"\n[tftp]\nmax_blksize = 1024',
      mtu: 9000,
      want: 1024,
      origin: null,
    },
    {
      name: "server_ip given: the MTU is still the interface's",
      toml: 'server_ip = "10.0.0.1"',
      mtu: 9000,
      want: 8968,
      origin: /MTU 9000/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const config = loadConfig(`interface = "eth1"\n${c.toml}\n`, { lookup: withMtu(c.mtu) });
      assert.equal(config.tftp.max_blksize, c.want);
      const line = formatConfig(config).split("\n").find((l) => l.startsWith("max_blksize"));
      if (c.origin) {
        assert.match(config.origins["tftp.max_blksize"] ?? "", c.origin);
        assert.match(line ?? "", c.origin);
      } else assert.equal(config.origins["tftp.max_blksize"], undefined);
    });
  }
});

Deno.test("dhcp.router and dns: this server by default, empty for none, else as given", async (t) => {
  const cases = [
    {
      toml: "",
      router: "10.0.0.1",
      dns: ["10.0.0.1"],
      printed: [
        /^router = "10\.0\.0\.1" +# default gateway .*; default: this server's address on eth1; router = "" for none$/m,
        /^dns = \["10\.0\.0\.1"\] +# DNS servers .*; default: this server's address on eth1; dns = \[\] for none$/m,
      ],
    },
    {
      toml: 'router = ""\ndns = []',
      router: undefined,
      dns: [],
      printed: [
        /^router = "" +# default gateway for clients \(original: Gateway\): none$/m,
        /^dns = \[\] +# DNS servers for clients \(original: DNSServer\): none$/m,
      ],
    },
    {
      toml: 'dns = ""',
      router: "10.0.0.1",
      dns: [],
      printed: [/^dns = \[\] +# .*: none$/m],
    },
    {
      toml: 'router = "10.0.0.254"\ndns = ["1.1.1.1", "10.0.0.53"]',
      router: "10.0.0.254",
      dns: ["1.1.1.1", "10.0.0.53"],
      printed: [
        /^router = "10\.0\.0\.254" +# default gateway for clients \(original: Gateway\)$/m,
        /^dns = \["1\.1\.1\.1", "10\.0\.0\.53"\] +# DNS servers for clients \(original: DNSServer\)$/m,
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.toml || "(unset)", () => {
      const config = loadConfig(`interface = "eth1"\n[dhcp]\n${c.toml}\n`, { lookup: eth1 });
      assert.equal(config.dhcp.router, c.router);
      assert.deepEqual(config.dhcp.dns, c.dns);
      const text = withoutSources(formatConfig(config));
      for (const re of c.printed) assert.match(text, re);
      const again = loadConfig(text, { lookup: eth1 });
      assert.equal(again.dhcp.router, c.router);
      assert.deepEqual(again.dhcp.dns, c.dns);
    });
  }
});

const resolv = "# nameserver 1.1.1.1\nsearch lab\nnameserver 10.0.0.53\nnameserver ::1\n" +
  "nameserver 10.0.0.1\nnameserver 9.9.9.9\n";

Deno.test("[dns]: on in DHCP server mode, upstreams from resolv.conf, the original's domain", async (t) => {
  const cases: {
    toml: string;
    resolv?: string | null;
    want: Partial<ReturnType<typeof loadConfig>["dns"]>;
    domain?: string;
    printed: RegExp[];
  }[] = [
    {
      toml: "",
      want: { enabled: true, upstream: ["10.0.0.53", "9.9.9.9"], ttl: 60, port: 53 },
      domain: "erf",
      printed: [
        /^enabled = true +# answer <host>\.erf and forward the rest; default: on, as DHCP hands out addresses \(mode server\)$/m,
        /^upstream = \["10\.0\.0\.53", "9\.9\.9\.9"\] +# .*\(original: UpstreamDNS\); default: the IPv4 nameservers of \/etc\/resolv\.conf$/m,
        /^domain = "erf" +# domain for clients, the zone \[dns\] answers for \(original: Domain\); default: the original's/m,
        /^ttl = 60 +# /m,
        /^port = 53 +# DNS port, UDP and TCP, on server_ip only$/m,
      ],
    },
    {
      toml: '[dhcp]\nmode = "proxy"',
      want: { enabled: false },
      printed: [/^enabled = false +# .*; default: off, as DHCP mode is proxy$/m],
    },
    {
      toml: "[dns]\nenabled = false",
      want: { enabled: false },
      printed: [/^enabled = false +# answer <host>\.erf and forward the rest$/m],
    },
    {
      toml: "",
      resolv: null,
      want: { upstream: [] },
      printed: [/^upstream = \[\] +# .*: other names are refused$/m],
    },
    {
      toml: "",
      resolv: "nameserver 10.0.0.1\n",
      want: { upstream: [] },
      printed: [/^upstream = \[\] +# /m],
    },
    {
      toml: 'UpstreamDNS = "192.168.1.5"',
      want: { upstream: ["192.168.1.5"] },
      printed: [
        /^upstream = \["192\.168\.1\.5"\] +# resolvers asked for other names, in order \(original: UpstreamDNS\)$/m,
      ],
    },
    {
      toml: '[dns]\nupstream = ["10.0.0.53:5353", "10.0.0.54:53"]\nttl = "5m"\nport = 5353',
      want: { upstream: ["10.0.0.53:5353", "10.0.0.54"], ttl: 300, port: 5353 },
      printed: [/^upstream = \["10\.0\.0\.53:5353", "10\.0\.0\.54"\]/m],
    },
    {
      // Port 5353 here: this server's port 53 is not itself.
      toml: '[dns]\nupstream = "10.0.0.1"\nport = 5353',
      want: { upstream: ["10.0.0.1"] },
      printed: [],
    },
    {
      toml: '[dhcp]\ndomain = "Lab.Example."',
      want: {},
      domain: "Lab.Example",
      printed: [/^enabled = true +# answer <host>\.Lab\.Example and/m],
    },
    {
      toml: '[dhcp]\ndomain = ""\n[dns]\nenabled = false',
      want: { enabled: false },
      printed: [/^domain = "" +# domain for clients.*: none$/m],
    },
  ];
  for (const c of cases) {
    await t.step(c.toml.replaceAll("\n", " ") || "(defaults)", () => {
      const config = loadConfig(`interface = "eth1"\n${c.toml}\n`, {
        lookup: eth1,
        resolvConf: () => c.resolv === undefined ? resolv : c.resolv,
      });
      for (const [k, v] of Object.entries(c.want)) {
        assert.deepEqual(config.dns[k as keyof typeof config.dns], v, k);
      }
      if (c.domain !== undefined) assert.equal(config.dhcp.domain, c.domain);
      const text = withoutSources(formatConfig(config));
      for (const re of c.printed) assert.match(text, re);
      const again = loadConfig(text, { lookup: eth1, resolvConf: () => null });
      assert.deepEqual(again.dns, config.dns);
      assert.equal(again.dhcp.domain, config.dhcp.domain);
    });
  }
});

Deno.test("with [dns] off, DHCP hands out this host's resolvers, never a loopback one", async (t) => {
  const cases: [string, string | null, string[], RegExp][] = [
    ["nameserver 10.9.9.9\nnameserver 127.0.0.53\n", "", ["10.9.9.9"], /this host's resolvers/],
    ["nameserver 127.0.0.53\n", "", [], /default: none, as \[dns\] is off/],
    ["nameserver 10.9.9.9\n", 'dns = ["10.0.0.2"]', ["10.0.0.2"], /^(?!.*default)/],
  ];
  for (const [resolv, dhcp, want, origin] of cases) {
    await t.step(`${JSON.stringify(resolv)} ${dhcp}`, () => {
      const c = loadConfig(`interface = "eth1"\n[dhcp]\n${dhcp}\n[dns]\nenabled = false\n`, {
        lookup: eth1,
        resolvConf: () => resolv,
      });
      assert.deepEqual(c.dhcp.dns, want);
      assert.match(c.origins["dhcp.dns"] ?? "", origin);
    });
  }
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

/** Parsed, printed and read back: one `[ipfs]` size key, its cases (`toml` "" for unset). */
async function byteSizeKey(
  t: Deno.TestContext,
  key: "cache_max" | "min_rate",
  cases: { toml: string; want: number; printed: string }[],
): Promise<void> {
  for (const c of cases) {
    await t.step(c.toml || "(unset)", () => {
      const config = loadConfig(`interface = "eth1"\n[ipfs]\n${c.toml}\n`, { lookup: eth1 });
      assert.equal(config.ipfs[key], c.want);
      const text = withoutSources(formatConfig(config));
      assert.match(text, new RegExp(`^${key} = ${c.printed} +# \\S`, "m"));
      assert.equal(loadConfig(text, { lookup: eth1 }).ipfs[key], c.want);
    });
  }
}

Deno.test("ipfs.cache_max: bytes or a size with a unit, default 10GiB, 0 for no limit", async (t) => {
  await byteSizeKey(t, "cache_max", [
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
  ]);
});

Deno.test("ipfs.min_rate: bytes a second, default 64KiB, 0 for no limit", async (t) => {
  await byteSizeKey(t, "min_rate", [
    { toml: "", want: 64 * 1024, printed: '"64KiB"' },
    { toml: 'min_rate = "16KiB"', want: 16 * 1024, printed: '"16KiB"' },
    { toml: "min_rate = 1000", want: 1000, printed: '"1kB"' },
    { toml: "min_rate = 0", want: 0, printed: "0" },
  ]);
  assert.throws(
    () => loadConfig(`interface = "eth1"\n[ipfs]\nmin_rate = "fast"\n`, { lookup: eth1 }),
    /^.*:3: ipfs\.min_rate: expected bytes as a whole number or a size like "10GiB", "500MiB", "2GB", got string "fast"$/,
  );
});

Deno.test("parseByteSize", () => {
  assert.equal(parseByteSize("10GiB"), 10 * 2 ** 30);
  assert.equal(parseByteSize(" 500 MiB "), 500 * 2 ** 20);
  assert.equal(parseByteSize("1kB"), 1000);
  assert.equal(parseByteSize("7B"), 7);
  assert.equal(parseByteSize("7"), 7);
  assert.equal(parseByteSize("0"), 0);
  assert.equal(parseByteSize("0.0 GiB"), 0);
  assert.equal(parseByteSize("1.5"), 1);
  // Above 0 but under a byte: not read as 0, which means no limit.
  for (const bad of ["", "GiB", "10 GiBs", "-1GiB", "10G", "1e9", "ten MiB", "5 MiB 3", "0.5"]) {
    assert.equal(parseByteSize(bad), null, bad);
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
      assert.match(
        withoutSources(formatConfig(load(c.toml))),
        new RegExp(`^idle_timeout = ${c.want[0]} +# `, "m"),
      );
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
  assert.deepEqual(fuller.dhcp.options, {
    ntp: ["10.0.0.1"],
    domain_search: ["lab", "example.org"],
  });
  assert.equal(fuller.dhcp.subnets[0]?.network, "10.1.0.0/24");
  assert.deepEqual(fuller.machines[0]?.options, { ntp: ["10.0.0.2"] });
  assert.equal(fuller.dhcp.known_only, false);
  assert.equal(fuller.dhcp.new_client_rate, 10);
  assert.equal(fuller.api.token_file, "/var/lib/astralboot/api-token");
});

Deno.test("the README names every DHCP option of the table, with its code", () => {
  // Lines are wrapped anywhere: one space stands for any run of white space.
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url))
    .replace(/\s+/g, " ");
  const refused = /The server refuses the options that are its own or the client's: ([^.]*)\./
    .exec(readme)![1]!.match(/\b\d+\b/g)!.map(Number);
  for (const spec of knownOptions()) {
    if (spec.owned) assert.ok(refused.includes(spec.code), spec.name);
    else assert.ok(readme.includes(`\`${spec.name}\` ${spec.code}`), spec.name);
  }
  assert.equal(refused.length, knownOptions().filter((s) => s.owned).length);
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
      `interface = "eth1"\n[[machine]]\nmac = "52:54:00:00:00:01"\nip = "10.0.0.50"\n` +
      `[[machine]]\nmac = "52:54:00:00:00:02"\nip = "10.0.0.50"\n`,
      /machine\.ip: 10\.0\.0\.50 is reserved in two \[\[machine\]\] entries/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nmac = "52:54:00:00:00:01"\nhostname = "web"\n` +
      `[[machine]]\nmac = "52:54:00:00:00:02"\nhostname = "WEB"\n`,
      /machine\.hostname: WEB appears in two \[\[machine\]\] entries \(any case\)/,
    ],
    [
      `interface = "eth1"\n[[machine]]\nmac = "52:54:00:00:00:01"\nhostname = "AstralBoot"\n`,
      /machine\.hostname: astralboot is this server's own name in DNS/,
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
    [
      `interface = "eth1"\n[dns]\nupstream = "dns.example"\n`,
      /:3: dns\.upstream: expected IPv4 addresses like "10\.0\.0\.53" or "10\.0\.0\.53:5353", got "dns\.example"$/,
    ],
    [
      `interface = "eth1"\n[dns]\nupstream = ["10.0.0.9", "10.0.0.1:53"]\n`,
      /:3: dns\.upstream: 10\.0\.0\.1 is this server: queries would loop$/,
    ],
    [
      `interface = "eth1"\n[dns]\nupstream = 53\n`,
      /dns\.upstream: expected "10\.0\.0\.53" or a list/,
    ],
    [
      `interface = "eth1"\n[dns]\nttl = "2d"\n`,
      /:3: dns\.ttl: at most a day \(86400\), got 172800$/,
    ],
    [`interface = "eth1"\n[dns]\nport = 0\n`, /:3: dns\.port: must be between 1 and 65535, got 0$/],
    [
      `interface = "eth1"\n[dns]\nzone = "x"\n`,
      /:3: dns\.zone: unknown key; allowed: enabled, upstream, ttl, port$/,
    ],
    [`interface = "eth1"\n[dhcp]\ndomain = "bad_name"\n`, /:3: dhcp\.domain: not a domain name/],
    [`interface = "eth1"\n[dhcp]\ndomain = "a..b"\n`, /:3: dhcp\.domain: not a domain name/],
    [
      `interface = "eth1"\n[dhcp]\ndomain = ""\n`,
      /dns\.enabled: needs \[dhcp\] domain, the zone it answers for/,
    ],
    [`interface = "eth1"\nUpstreamDNS = "10.0.0.2"\n[dns]\nupstream = "10.0.0.3"\n`, /given twice/],
  ];
  for (const [source, expected] of cases) {
    await t.step(expected.source, () => assertConfigError(source, expected));
  }
});

Deno.test("formatConfig prints every key with a comment and parses back to the same config", () => {
  const c = loadConfig(
    `interface = "eth1"\n[boot]\ndefault = "tiny"\n[[machine]]\nmac = "52:54:00:00:00:01"\nvars = { a = 1 }\n`,
    { lookup: eth1, resolvConf: () => resolv },
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
      "min_rate",
      "menu_timeout",
      "secure_boot",
      "router_advertisement",
      "upstream",
      "ttl",
      "idle_timeout",
      "max_connections",
      "max_per_client",
      "mac",
    ]
  ) {
    assert.match(text, new RegExp(`^(# )?${key} = .+ # \\S`, "m"), key);
  }
  const again = loadConfig(text, { lookup: eth1 });
  // The same values; where they were set and where defaults came from differ (all in the file now).
  assert.deepEqual(
    {
      ...again,
      machines: again.machines.map((m) => ({ ...m, vars: { a: Number(m.vars.a) } })),
      sources: c.sources,
      origins: c.origins,
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

Deno.test("DHCP options: by name or number, top level and per machine, printed and read back", async (t) => {
  const source = `interface = "eth1"
[dhcp]
force_options = ["ntp", 224]
[dhcp.options]
ntp = ["10.0.0.1"]
domain_search = ["lab", "example.org"]
classless_routes = [["10.1.0.0/16", "10.0.0.254"], ["0.0.0.0/0", "10.0.0.1"]]
mtu = 9000
"43" = "hex:0102"
"224" = "text"
[[machine]]
mac = "52:54:00:00:00:01"
options = { ntp = ["10.0.0.9"] }
force_options = ["42"]
[[machine]]
mac = "52:54:00:00:00:02"
[machine.options]
"42" = "10.0.0.7"
`;
  const c = loadConfig(source, { lookup: eth1 });
  await t.step("read under their names, values normalised", () => {
    assert.deepEqual(c.dhcp.options, {
      ntp: ["10.0.0.1"],
      domain_search: ["lab", "example.org"],
      classless_routes: [["10.1.0.0/16", "10.0.0.254"], ["0.0.0.0/0", "10.0.0.1"]],
      mtu: 9000,
      vendor_specific: "hex:0102",
      "224": "text",
    });
    assert.deepEqual(c.dhcp.force_options, ["ntp", "224"]);
    assert.deepEqual(c.machines[0]!.options, { ntp: ["10.0.0.9"] });
    assert.deepEqual(c.machines[0]!.force_options, ["ntp"]);
    assert.deepEqual(c.machines[1]!.options, { ntp: ["10.0.0.7"] });
    assert.equal(c.machines[1]!.force_options, undefined);
  });
  await t.step("printed as sections with code and type, and read back the same", () => {
    const text = formatConfig(c);
    assert.match(
      text,
      /^\[dhcp\.options\]\nmtu = 9000 +# option 26 \(u16\)\nntp = \["10\.0\.0\.1"\] +# option 42 \(ips\)$/m,
    );
    assert.match(text, /^"224" = "text" +# option 224 \(hex\)$/m);
    assert.match(text, /^force_options = \["ntp", "224"\] +# /m);
    assert.match(text, /^\[machine\.options\]\nntp = \["10\.0\.0\.9"\]/m);
    assert.deepEqual(sameValues(loadConfig(text, { lookup: eth1 })), sameValues(c));
  });
  await t.step("none set: an empty section that says how", () => {
    const none = formatConfig(loadConfig(`interface = "eth1"\n`, { lookup: eth1 }));
    assert.match(none, /^\[dhcp\.options\]\n# none: options by name or number/m);
    assert.deepEqual(loadConfig(none, { lookup: eth1 }).dhcp.options, {});
  });
});

Deno.test("DHCP options: errors name the key, its line and what is expected", async (t) => {
  const m1 = `[[machine]]\nmac = "52:54:00:00:00:01"\n`;
  const m2 = `[[machine]]\nmac = "52:54:00:00:00:02"\n`;
  const cases: [string, RegExp][] = [
    [
      `interface = "eth1"\n[dhcp.options]\nntp = ["10.0.0.1"]\nmtu = 67\n`,
      /^config\.toml:4: dhcp\.options\.mtu: expected a whole number in 68\.\.65535, got number 67$/,
    ],
    [
      `interface = "eth1"\n[dhcp]\noptions = { ntp = "x" }\n`,
      /^config\.toml:3: dhcp\.options\.ntp: expected IPv4 addresses/,
    ],
    [
      `interface = "eth1"\n[dhcp.options]\n"53" = "hex:01"\n`,
      /^config\.toml:3: dhcp\.options\.53: option 53 \(message_type\) cannot be set/,
    ],
    [
      `interface = "eth1"\n[dhcp.options]\nsubnet_mask = "255.0.0.0"\n`,
      /:3: dhcp\.options\.subnet_mask: option 1 \(subnet_mask\) cannot be set: follows from netmask/,
    ],
    [
      `interface = "eth1"\n[dhcp.options]\nntps = "10.0.0.1"\n`,
      /:3: dhcp\.options\.ntps: unknown DHCP option; use a name \(did you mean ntp\?\)/,
    ],
    [
      `interface = "eth1"\n[dhcp.options]\nntp = "10.0.0.1"\n"42" = "10.0.0.2"\n`,
      // TOML tables list number keys first.
      /:3: dhcp\.options\.ntp: given twice: as 42 and as ntp; keep one/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nrouter = "10.0.0.2"\n[dhcp.options]\nrouter = ["10.0.0.3"]\n`,
      /:5: dhcp\.options\.router: given twice: as dhcp\.router and in its options; keep one/,
    ],
    [
      `interface = "eth1"\n[dhcp]\noptions = ["ntp"]\n`,
      /:3: dhcp\.options: expected a table, e\.g\. options = \{ ntp = \["10\.0\.0\.1"\] \}/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nforce_options = "ntp"\n`,
      /:3: dhcp\.force_options: expected a list of option names or numbers/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nforce_options = ["ntp", "lease_time"]\n`,
      /:3: dhcp\.force_options: lease_time: option 51 \(lease_time\) cannot be set/,
    ],
    [
      `interface = "eth1"\n[dhcp]\nforce_options = [true]\n`,
      /:3: dhcp\.force_options: expected a list/,
    ],
    [
      // The second machine's table: its own line, not the first machine's.
      `interface = "eth1"\n${m1}[machine.options]\nntp = "10.0.0.1"\n${m2}[machine.options]\nntp = "x"\n`,
      /^config\.toml:9: machine\.options\.ntp: expected IPv4 addresses/,
    ],
    [
      `interface = "eth1"\n${m1}options = { ntp = "10.0.0.1" }\n${m2}options = { mtu = 1 }\n`,
      /^config\.toml:7: machine\.options\.mtu: expected a whole number in 68/,
    ],
    [
      `interface = "eth1"\n${m1}${m2}force_options = ["nope"]\n`,
      /^config\.toml:6: machine\.force_options: nope: unknown DHCP option/,
    ],
  ];
  for (const [source, expected] of cases) {
    await t.step(expected.source, () => assertConfigError(source, expected));
  }
});

Deno.test("[[dhcp.subnet]]: networks behind relays, defaults from [dhcp], printed and read back", async (t) => {
  const source = `interface = "eth1"
[dhcp]
dns = ["10.0.0.53"]
domain = "lab"
lease = "2h"
[[dhcp.subnet]]
network = "10.1.0.0/24"
range = ["10.1.0.100", "10.1.0.200"]
router = "10.1.0.1"
[dhcp.subnet.options]
ntp = ["10.1.0.1"]
[[dhcp.subnet]]
network = "10.2.0.0/16"
router = "10.2.0.1"
dns = ["10.2.0.53"]
domain = "two.lab"
lease = 600
force_options = ["ntp"]
options = { ntp = "10.2.0.1" }
[[machine]]
mac = "52:54:00:00:00:01"
ip = "10.2.0.9"
`;
  const c = loadConfig(source, { lookup: eth1 });
  await t.step("read with what they inherit", () => {
    assert.deepEqual(c.dhcp.subnets, [
      {
        network: "10.1.0.0/24",
        range: ["10.1.0.100", "10.1.0.200"],
        router: "10.1.0.1",
        dns: ["10.0.0.53"],
        domain: "lab",
        lease: 7200,
        options: { ntp: ["10.1.0.1"] },
        force_options: [],
      },
      {
        network: "10.2.0.0/16",
        range: ["10.2.0.1", "10.2.255.254"],
        router: "10.2.0.1",
        dns: ["10.2.0.53"],
        domain: "two.lab",
        lease: 600,
        options: { ntp: ["10.2.0.1"] },
        force_options: ["ntp"],
      },
    ]);
    assert.equal(c.machines[0]!.ip, "10.2.0.9");
  });
  await t.step("printed as [[dhcp.subnet]] tables and read back the same", () => {
    const text = formatConfig(c);
    assert.match(text, /^\[\[dhcp\.subnet\]\]\nnetwork = "10\.1\.0\.0\/24" +# /m);
    assert.match(text, /^\[dhcp\.subnet\.options\]\nntp = \["10\.2\.0\.1"\]/m);
    assert.deepEqual(sameValues(loadConfig(text, { lookup: eth1 })), sameValues(c));
  });
  await t.step("none: an empty list", () => {
    assert.deepEqual(loadConfig(`interface = "eth1"\n`, { lookup: eth1 }).dhcp.subnets, []);
  });
});

Deno.test("[[dhcp.subnet]]: errors name the key, the subnet's line and what is wrong", async (t) => {
  const one = `[[dhcp.subnet]]\nnetwork = "10.1.0.0/24"\nrouter = "10.1.0.1"\n`;
  const cases: [string, RegExp][] = [
    [
      `[[dhcp.subnet]]\nnetwork = "10.0.0.0/16"\nrouter = "10.0.0.254"\n`,
      /^config\.toml:3: dhcp\.subnet\.network: 10\.0\.0\.0\/16 overlaps the interface's network 10\.0\.0\.0\/24$/,
    ],
    [
      `${one}[[dhcp.subnet]]\nnetwork = "10.1.0.128/25"\nrouter = "10.1.0.129"\n`,
      /^config\.toml:6: dhcp\.subnet\.network: 10\.1\.0\.128\/25 overlaps 10\.1\.0\.0\/24$/,
    ],
    [
      `[[dhcp.subnet]]\nnetwork = "10.1.0.5/24"\nrouter = "10.1.0.1"\n`,
      /:3: dhcp\.subnet\.network: 10\.1\.0\.5\/24 has host bits set; did you mean "10\.1\.0\.0\/24"\?/,
    ],
    [
      `[[dhcp.subnet]]\nnetwork = "10.1.0.0"\nrouter = "10.1.0.1"\n`,
      /:3: dhcp\.subnet\.network: expected a network like "10\.1\.0\.0\/24", got "10\.1\.0\.0"/,
    ],
    [
      `[[dhcp.subnet]]\nnetwork = "10.1.0.0/31"\nrouter = "10.1.0.1"\n`,
      /:3: dhcp\.subnet\.network: 10\.1\.0\.0\/31 has no room for clients/,
    ],
    [
      `[[dhcp.subnet]]\nrouter = "10.1.0.1"\n`,
      /dhcp\.subnet\.network: every \[\[dhcp\.subnet\]\] needs network/,
    ],
    [
      `[[dhcp.subnet]]\nnetwork = "10.1.0.0/24"\n`,
      /dhcp\.subnet\.router: every \[\[dhcp\.subnet\]\] needs router = "…": its clients reach this server through it/,
    ],
    [
      `[[dhcp.subnet]]\nnetwork = "10.1.0.0/24"\nrouter = "10.2.0.1"\n`,
      /:4: dhcp\.subnet\.router: 10\.2\.0\.1 is not inside 10\.1\.0\.0\/24/,
    ],
    [
      `${one}range = ["10.1.0.100", "10.1.1.10"]\n`,
      /:5: dhcp\.subnet\.range: 10\.1\.0\.100\.\.10\.1\.1\.10 is not inside 10\.1\.0\.0\/24/,
    ],
    [
      `${one}range = ["10.1.0.9", "10.1.0.2"]\n`,
      /:5: dhcp\.subnet\.range: first address 10\.1\.0\.9 is after last/,
    ],
    [`${one}range = ["10.1.0.9"]\n`, /:5: dhcp\.subnet\.range: expected two addresses/],
    [`${one}lease = "soon"\n`, /:5: dhcp\.subnet\.lease: expected seconds or a duration/],
    [
      `${one}[[dhcp.subnet]]\nnetwork = "10.2.0.0/24"\nrouter = "10.2.0.1"\nrouters = "x"\n`,
      /^config\.toml:8: dhcp\.subnet\.routers: unknown key; allowed: network, range, router/,
    ],
    [
      `${one}[dhcp.subnet.options]\nrouter = ["10.1.0.2"]\n`,
      /:6: dhcp\.subnet\.options\.router: given twice: as dhcp\.subnet\.router and in its options/,
    ],
    [
      `${one}[dhcp.subnet.options]\nmtu = 10\n`,
      /:6: dhcp\.subnet\.options\.mtu: expected a whole number in 68\.\.65535/,
    ],
    [
      `[dhcp.subnet]\nnetwork = "10.1.0.0/24"\n`,
      /dhcp\.subnet: expected \[\[dhcp\.subnet\]\] tables/,
    ],
    [
      `${one}[[machine]]\nmac = "52:54:00:00:00:01"\nip = "10.1.0.9"\n[[machine]]\nmac = "52:54:00:00:00:02"\nip = "10.7.0.9"\n`,
      /^config\.toml:10: machine\.ip: 10\.7\.0\.9 is in no network this server hands out addresses in \(10\.0\.0\.0\/24, 10\.1\.0\.0\/24\)$/,
    ],
  ];
  for (const [rest, expected] of cases) {
    await t.step(expected.source.slice(0, 70), () => {
      assertConfigError(`interface = "eth1"\n${rest}`, expected);
    });
  }
  await t.step(
    "in proxy mode a reservation may be anywhere (another server hands out addresses)",
    () => {
      const c = loadConfig(
        `interface = "eth1"\n[dhcp]\nmode = "proxy"\n[[machine]]\nmac = "52:54:00:00:00:02"\nip = "10.7.0.9"\n`,
        { lookup: eth1 },
      );
      assert.equal(c.machines[0]!.ip, "10.7.0.9");
    },
  );
});
