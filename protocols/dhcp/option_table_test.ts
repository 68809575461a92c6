import assert from "node:assert/strict";
import {
  encodeOption,
  encodeOptions,
  knownOptions,
  optionSpec,
  OptionValueError,
} from "./option_table.ts";

const text = (s: string) => [...new TextEncoder().encode(s)];

Deno.test("encodeOption: every type, by name and by number", async (t) => {
  const cases: [string, unknown, number, unknown, number[]][] = [
    // key, value, code, printed value, bytes
    ["ntp", ["10.0.0.1", "10.0.0.2"], 42, ["10.0.0.1", "10.0.0.2"], [10, 0, 0, 1, 10, 0, 0, 2]],
    ["ntp", "10.0.0.1", 42, ["10.0.0.1"], [10, 0, 0, 1]],
    ["42", ["10.0.0.1"], 42, ["10.0.0.1"], [10, 0, 0, 1]],
    ["swap_server", "10.0.0.9", 16, "10.0.0.9", [10, 0, 0, 9]],
    ["default_ttl", 64, 23, 64, [64]],
    ["mtu", 9000, 26, 9000, [0x23, 0x28]],
    ["arp_cache_timeout", 0xfffffffe, 35, 0xfffffffe, [0xff, 0xff, 0xff, 0xfe]],
    ["time_offset", -3600, 2, -3600, [0xff, 0xff, 0xf1, 0xf0]],
    ["mtu", 1500n, 26, 1500, [0x05, 0xdc]],
    ["ip_forwarding", true, 19, true, [1]],
    ["all_subnets_local", false, 27, false, [0]],
    ["tftp_server", "tftp.lab", 66, "tftp.lab", text("tftp.lab")],
    ["tz_name", "Europe/Zurich", 101, "Europe/Zurich", text("Europe/Zurich")],
    ["domain_search", ["lab"], 119, ["lab"], [3, ...text("lab"), 0]],
    ["domain_search", "lab", 119, ["lab"], [3, ...text("lab"), 0]],
    [
      "classless_routes",
      [["10.1.0.0/16", "10.0.0.254"], ["0.0.0.0/0", "10.0.0.1"]],
      121,
      [["10.1.0.0/16", "10.0.0.254"], ["0.0.0.0/0", "10.0.0.1"]],
      [16, 10, 1, 10, 0, 0, 254, 0, 10, 0, 0, 1],
    ],
    ["ms_classless_routes", [["0.0.0.0/0", "10.0.0.1"]], 249, [["0.0.0.0/0", "10.0.0.1"]], [
      0,
      10,
      0,
      0,
      1,
    ]],
    ["vendor_specific", "hex:0104C0A80101", 43, "hex:0104c0a80101", [1, 4, 192, 168, 1, 1]],
    ["43", "hex:01:04:c0:a8:01:01", 43, "hex:0104c0a80101", [1, 4, 192, 168, 1, 1]],
    ["224", "text", 224, "text", text("text")],
    ["224", "hex:", 224, "hex:", []],
    ["ntp", "hex:0a000001", 42, "hex:0a000001", [10, 0, 0, 1]],
    ["mtu", "hex:05dc", 26, "hex:05dc", [5, 0xdc]],
  ];
  for (const [key, value, code, printed, bytes] of cases) {
    await t.step(
      `${key} = ${JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`,
      () => {
        const got = encodeOption(key, value);
        assert.equal(got.spec.code, code);
        assert.deepEqual(got.value, printed);
        assert.deepEqual([...got.bytes], bytes);
        // What `astralboot config` prints encodes to the same bytes.
        assert.deepEqual([...encodeOption(got.spec.name, got.value).bytes], bytes);
      },
    );
  }
});

Deno.test("encodeOption: one clear error per mistake", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["ntps", ["10.0.0.1"], /unknown DHCP option; use a name \(did you mean ntp\?\) or a number/],
    ["frobnicate", 1, /unknown DHCP option; use a name such as ntp or domain_search/],
    ["0", "hex:00", /unknown DHCP option/],
    ["255", "hex:00", /unknown DHCP option/],
    ["300", "hex:00", /unknown DHCP option/],
    ["53", "hex:01", /option 53 \(message_type\) cannot be set: the server's own/],
    ["server_id", "10.0.0.1", /option 54 \(server_id\) cannot be set/],
    ["lease_time", 60, /option 51 \(lease_time\) cannot be set: set by lease/],
    ["58", 60, /derived from lease/],
    ["1", "255.255.0.0", /option 1 \(subnet_mask\) cannot be set: follows from netmask/],
    ["55", "hex:01", /parameter_request_list.*the client sends it/],
    ["61", "hex:01", /client_id/],
    ["82", "hex:0101", /relay_agent_info\) cannot be set: the relay's own/],
    ["hostname", "x", /comes from \[\[machine\]\] hostname/],
    ["ntp", ["10.0.0.300"], /expected IPv4 addresses like \["10\.0\.0\.1"\], got a list/],
    ["ntp", [], /expected IPv4 addresses/],
    ["ntp", 5, /expected IPv4 addresses .* got number 5/],
    ["swap_server", ["10.0.0.1"], /expected an IPv4 address like "10\.0\.0\.1", got a list/],
    ["mtu", 67, /expected a whole number in 68\.\.65535, got number 67/],
    ["mtu", 65536, /in 68\.\.65535/],
    ["mtu", 1.5, /whole number/],
    ["mtu", "9000", /whole number .* got string "9000"/],
    ["default_ttl", 0, /in 1\.\.255/],
    ["time_offset", 2 ** 31, /in -2147483648\.\.2147483647/],
    ["ip_forwarding", "yes", /expected true or false, got string "yes"/],
    ["tftp_server", "", /expected a text/],
    ["tftp_server", 3, /expected a text, got number 3/],
    ["224", 3, /expected "hex:0102…" or a text, got number 3/],
    ["224", "hex:abc", /pairs of hex digits/],
    ["224", "hex:zz", /pairs of hex digits/],
    ["mtu", "hex:05", /1 bytes of hex, but option 26 \(mtu\) takes 2/],
    ["ntp", "hex:0a0000", /3 bytes of hex, but option 42 \(ntp\) takes a multiple of 4/],
    ["domain_search", ["lab", 3], /expected domain names/],
    ["domain_search", ["la b"], /"la b" is not a domain name/],
    ["classless_routes", ["10.0.0.0/8"], /expected routes like/],
    ["classless_routes", [["10.1.0.5/16", "10.0.0.1"]], /host bits set; did you mean/],
    ["classless_routes", [["10.1.0.0/16", "gw"]], /router "gw" is not an IPv4 address/],
    ["classless_routes", [], /expected routes/],
    ["224", `hex:${"00".repeat(1025)}`, /1025 bytes encoded, at most 1024/],
  ];
  for (const [key, value, want] of cases) {
    await t.step(`${key}: ${want.source.slice(0, 40)}`, () => {
      assert.throws(() => encodeOption(key, value), (e: unknown) => {
        assert.ok(e instanceof OptionValueError, `not an OptionValueError: ${e}`);
        assert.match(e.message, want);
        return true;
      });
    });
  }
});

Deno.test("the table: names and codes unique, names snake_case, numbers find names", () => {
  const specs = knownOptions();
  assert.equal(new Set(specs.map((s) => s.code)).size, specs.length);
  assert.equal(new Set(specs.map((s) => s.name)).size, specs.length);
  for (const s of specs) {
    assert.match(s.name, /^[a-z][a-z0-9_]*$/);
    assert.ok(s.code >= 1 && s.code <= 254);
    if (!s.owned) assert.equal(optionSpec(String(s.code)).name, s.name);
  }
  assert.deepEqual(optionSpec("224"), { code: 224, name: "224", type: "hex" });
});

Deno.test("encodeOptions: a table of options by code", () => {
  const got = encodeOptions({ ntp: ["10.0.0.1"], "224": "x" });
  assert.deepEqual([...got.keys()].sort((a, b) => a - b), [42, 224]);
  assert.deepEqual([...got.get(224)!], text("x"));
});
