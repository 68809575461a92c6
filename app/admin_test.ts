import assert from "node:assert/strict";
import { formatTable, leasesCommand, machineCommand } from "./admin.ts";
import { UsageError } from "./cli.ts";
import { loadConfig } from "./config.ts";
import { openDatabase } from "../state/db.ts";
import { LeaseStore } from "../state/leases.ts";
import { MachineRegistry } from "../state/machines.ts";
import { BootHistory } from "../state/history.ts";
import { mustParseMac } from "../net/mac.ts";
import { parseUuid } from "../net/uuid.ts";

const K8S = mustParseMac("52:54:00:00:01:01");
const OTHER = mustParseMac("52:54:00:00:0f:01");
const UUID = parseUuid("12345678-9abc-def0-1122-334455667788")!;

async function withConfig(fn: (config: ReturnType<typeof loadConfig>) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "abi-admin-" });
  try {
    const config = loadConfig(
      `interface = "br0"
server_ip = "10.0.0.1"
netmask = "255.255.255.0"
data_dir = "${dir}/data"
[dhcp]
range = ["10.0.0.100", "10.0.0.150"]
[[machine]]
mac = "${K8S}"
hostname = "k8s-1"
ip = "10.0.0.11"
os = "debian"
class = "k8s-node"
[[machine]]
uuid = "${UUID}"
hostname = "by-uuid"
os = "tiny"
`,
      { file: "test.toml" },
    );
    await fn(config);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function capture() {
  const text: string[] = [];
  return { out: (t: string) => text.push(t), text: () => text.join("") };
}

Deno.test("leases and machine list without a database show the config, create nothing", async () => {
  await withConfig((config) => {
    const c = capture();
    assert.equal(leasesCommand(config, c.out), 0);
    assert.equal(
      c.text(),
      `# leases (${config.db_file})\n` +
        "IP         MAC                HOSTNAME  STATE     EXPIRES\n" +
        "10.0.0.11  52:54:00:00:01:01  k8s-1     reserved  -\n" +
        "\n# machines\n" +
        "MAC                HOSTNAME  IP         OS               STATE    UUID" +
        "                                  SERIAL  LAST SEEN  LAST BOOT\n" +
        "52:54:00:00:01:01  k8s-1     10.0.0.11  debian/k8s-node  chosen   -" +
        "                                     -       -          -\n" +
        `-                  by-uuid   -          tiny             waiting  ${UUID}  -       -          -\n`,
    );
    const m = capture();
    assert.equal(machineCommand(config, ["list"], m.out), 0);
    assert.match(m.text(), /^52:54:00:00:01:01 {2}k8s-1 .* chosen /m);
    assert.throws(() => Deno.statSync(config.db_file), Deno.errors.NotFound);
  });
});

Deno.test("leases, machines and reinstall against the server's database", async (t) => {
  await withConfig(async (config) => {
    const now = Date.UTC(2026, 10, 25, 12, 0, 0);
    {
      const db = openDatabase(config.data_dir);
      const leases = new LeaseStore(db, { range: config.dhcp.range, now: () => now });
      leases.offer(OTHER);
      leases.commit(OTHER, "10.0.0.100", 3600, { hostname: "box" });
      leases.flush();
      const reg = new MachineRegistry(db, { machines: config.machines, now: () => now });
      reg.seen(OTHER, "10.0.0.100");
      // OTHER's iPXE reported the UUID of the uuid entry: it is that machine now.
      reg.report(OTHER, {
        uuid: UUID,
        serial: "SN\x1b[2J1",
        manufacturer: "QEMU",
        platform: "pcbios",
        dhcp_arch: 0,
        vendor_class: "PXEClient:Arch:00000:UNDI:002001",
      });
      reg.installed(K8S, "10.0.0.11");
      // What the server's history writer records for the callback.
      new BootHistory(db, { now: () => now }).record(K8S, "installed", "install finished");
      db.close();
    }
    await t.step("leases lists the bound lease, the reservation and both machines", () => {
      const c = capture();
      assert.equal(leasesCommand(config, c.out), 0);
      const text = c.text();
      assert.match(text, /^10\.0\.0\.11 +52:54:00:00:01:01 +k8s-1 +reserved +-$/m);
      assert.match(text, /^10\.0\.0\.100 +52:54:00:00:0f:01 +box +\S+ +2026-11-25 13:00:00$/m);
      assert.match(
        text,
        /^52:54:00:00:01:01 +k8s-1 +10\.0\.0\.11 +debian\/k8s-node +installed +- +- +2026-11-25 12:00:00 +2026-11-25 12:00:00 install finished$/m,
      );
      assert.match(
        text,
        /^52:54:00:00:0f:01 +by-uuid +10\.0\.0\.100 +tiny +chosen +12345678-9abc-def0-1122-334455667788 +SN\?\?2J1 +2026/m,
      );
      assert.doesNotMatch(text, /waiting/);
    });
    await t.step("show tells everything of one machine, what it reported cleaned", () => {
      const c = capture();
      assert.equal(machineCommand(config, ["show", "52-54-00-00-0F-01"], c.out), 0);
      const lines = c.text().split("\n");
      for (
        const want of [
          /^mac +52:54:00:00:0f:01$/,
          /^hostname +by-uuid$/,
          /^os +tiny \(pinned by \[\[machine\]\]\)$/,
          /^\[\[machine\]\] +by uuid 12345678-9abc-def0-1122-334455667788 \(bound to this MAC\)$/,
          /^ {2}uuid +12345678-9abc-def0-1122-334455667788$/,
          /^ {2}serial +SN\?\?2J1$/,
          /^ {2}manufacturer +QEMU$/,
          /^ {2}product +-$/,
          /^ {2}platform +pcbios$/,
          /^ {2}dhcp arch \(93\) +0$/,
          /^ {2}vendor class \(60\) +PXEClient:Arch:00000:UNDI:002001$/,
        ]
      ) {
        assert.ok(lines.some((l) => want.test(l)), `${want} in\n${c.text()}`);
      }
      const k = capture();
      assert.equal(machineCommand(config, ["show", K8S], k.out), 0);
      assert.match(k.text(), /^\[\[machine\]\] +by its mac$/m);
      assert.match(k.text(), /^ +2026-11-25 12:00:00 installed install finished$/m);
    });
    await t.step("with [[dhcp.subnet]] networks, each lease names its subnet", () => {
      const db = openDatabase(config.data_dir);
      const far = new LeaseStore(db, { range: ["10.9.0.50", "10.9.0.60"], now: () => now });
      far.offer(K8S);
      far.flush();
      db.close();
      const c = capture();
      const subnet = {
        network: "10.9.0.0/24",
        range: ["10.9.0.50", "10.9.0.60"] as [string, string],
        router: "10.9.0.1",
        dns: [],
        lease: 3600,
        options: {},
        force_options: [],
      };
      assert.equal(
        leasesCommand({ ...config, dhcp: { ...config.dhcp, subnets: [subnet] } }, c.out),
        0,
      );
      assert.match(c.text(), /^IP +MAC +HOSTNAME +STATE +EXPIRES +SUBNET$/m);
      assert.match(c.text(), /^10\.0\.0\.100 +52:54:00:00:0f:01 +box .* 10\.0\.0\.0\/24$/m);
      assert.match(c.text(), /^10\.9\.0\.50 +52:54:00:00:01:01 +- +\S+ .* 10\.9\.0\.0\/24$/m);
    });
    await t.step("reinstall brings the installer back", () => {
      const c = capture();
      assert.equal(machineCommand(config, ["reinstall", "52-54-00-00-01-01"], c.out), 0);
      assert.equal(
        c.text(),
        "52:54:00:00:01:01 (k8s-1) will install debian/k8s-node on its next boot\n",
      );
      const db = openDatabase(config.data_dir);
      assert.equal(
        new MachineRegistry(db, { machines: config.machines }).get(K8S)!.state,
        "chosen",
      );
      db.close();
    });
    for (const verb of ["reinstall", "show"]) {
      await t.step(`${verb}: an unknown machine is exit 1 with a message`, () => {
        const c = capture(), e = capture();
        assert.equal(machineCommand(config, [verb, "52:54:00:99:99:99"], c.out, e.out), 1);
        assert.equal(c.text(), "");
        assert.match(
          e.text(),
          /no machine 52:54:00:99:99:99: not in the config and never booted here/,
        );
      });
    }
  });
});

Deno.test("machine: usage mistakes are UsageErrors", async (t) => {
  await withConfig(async (config) => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown machine command frobnicate/],
      [["reinstall"], /machine reinstall takes one MAC/],
      [["reinstall", "a", "b"], /machine reinstall takes one MAC/],
      [["reinstall", "not-a-mac"], /not a MAC address: "not-a-mac"/],
      [["show"], /machine show takes one MAC/],
      [["show", "nope"], /not a MAC address: "nope"/],
      [["list", "x"], /machine list takes no arguments/],
    ];
    for (const [args, message] of cases) {
      await t.step(args.join(" "), () => {
        assert.throws(() => machineCommand(config, args, () => {}), (e: Error) => {
          assert.ok(e instanceof UsageError);
          assert.match(e.message, message);
          return true;
        });
      });
    }
  });
});

Deno.test("formatTable pads columns and trims line ends", () => {
  assert.equal(formatTable([["A", "BB"], ["ccc", ""]]), "A    BB\nccc\n");
  // What a client sent (a host name stored before names were cleaned) never drives the terminal.
  assert.equal(formatTable([["H"], ["evil\x1b]0;x\x07\x9bname"]]), "H\nevil?]0;x??name\n");
});
