/**
 * Matching beyond the MAC, with real firmware: QEMU VMs with a UUID and SMBIOS strings
 * (`-uuid`, `-smbios type=1,…`) PXE-boot from Astral Boot inside throwaway namespaces (prefix
 * `abm`). The config names the machine by `[[machine]] uuid` alone. iPXE expands the settings
 * in the script URL of the DHCP answer, so its one `/boot.ipxe` request reports the UUID and
 * serial; the entry is bound to the VM's MAC and its OS boots at once, with the entry's host
 * name and the reported serial on the kernel command line; `astralboot machine list` and
 * `machine show` tell what it reported, DHCP's option 97 included.
 *
 * Needs root, qemu-system-x86, ovmf, ipxe, tcpdump and tshark.
 */
import assert from "node:assert/strict";
import { buildFixture, FIXTURE_OS, MARKER, OS_TOML } from "../lab/fixture.ts";
import { type Firmware, type LabResult, type Nic, runLab } from "../lab/lab.ts";
import { astralbootCommand, type LabServer, spawnAll } from "../lab/servers.ts";
import { formatStages } from "../lab/stages.ts";
import { run } from "../lab/netns.ts";
import { silentLogger } from "../log.ts";
import { parseLogLine } from "./lab_installer.ts";

const UUID = "5a1e0b0e-7e57-4c0d-9a1b-00000000c0de";
const SERIAL = "SN-4242";

/** Astral Boot with one `[[machine]]` named by uuid, its database and config kept in `dir`. */
function uuidServer(dir: string): LabServer {
  return {
    name: "astralboot",
    httpPort: 80,
    async start(ctx) {
      const config = [
        `interface = ${JSON.stringify(ctx.iface)}`,
        `data_dir = ${JSON.stringify(`${dir}/data`)}`,
        'log_level = "info"',
        "[dhcp]",
        'mode = "server"',
        `range = ${JSON.stringify(ctx.range)}`,
        "[boot]",
        "menu_timeout = 1",
        "[[machine]]",
        // As people write it off a label: upper case; stored canonical.
        `uuid = ${JSON.stringify(UUID.toUpperCase())}`,
        'hostname = "inv-uuid-1"',
        `os = ${JSON.stringify(FIXTURE_OS)}`,
      ].join("\n") + "\n";
      await Deno.writeTextFile(`${dir}/config.toml`, config);
      const argv = [
        ...astralbootCommand({ read: [ctx.tree, dir], write: [dir] }),
        "serve",
        "-c",
        `${dir}/config.toml`,
        "-l",
        ctx.tree,
        "--log-format",
        "json",
      ];
      return spawnAll(ctx.ns, [{ tag: "astralboot", argv }]);
    },
  };
}

/** `astralboot machine …` against the config of `dir` (the server has stopped). */
async function machineCommand(dir: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(astralbootCommand()[0]!, {
    args: [...astralbootCommand().slice(1), "machine", ...args, "-c", `${dir}/config.toml`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

function requests(result: LabResult): string[] {
  return result.serverLog.map(parseLogLine).filter((l) =>
    l?.subsystem === "http" && l.msg === "request"
  )
    .map((l) => `${l!.status} ${l!.path}`);
}

Deno.test({
  name: "a VM reports its UUID and serial, and a [[machine]] uuid entry gets its OS and name",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const fixture = await buildFixture({ logger: silentLogger });
    const table: {
      firmware: Firmware;
      nic: Nic;
      mac: string;
      buildarch: string;
      platform: string;
      dhcpArch: number;
    }[] = [
      // QEMU's NIC ROM is iPXE; its first DHCP gets the script URL.
      {
        firmware: "bios",
        nic: "e1000",
        mac: "52:54:00:ab:30:01",
        buildarch: "i386",
        platform: "pcbios",
        dhcpArch: 0,
      },
      // OVMF's PXE loads snponly.efi over TFTP, whose DHCP gets the script URL.
      {
        firmware: "uefi",
        nic: "virtio-net-pci",
        mac: "52:54:00:ab:30:02",
        buildarch: "x86_64",
        platform: "efi",
        dhcpArch: 7,
      },
    ];
    const summary: string[] = [];
    for (const row of table) {
      await t.step(`${row.firmware} + ${row.nic}`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "abm-inv-" });
        try {
          // The fixture with the host name and the reported serial on the kernel command line
          // (rendered per machine), and no `quiet`, so the kernel prints it.
          const tree = `${dir}/tree`;
          await run(["cp", "-r", "--no-preserve=ownership", fixture.tree, tree]);
          await Deno.writeTextFile(
            `${tree}/boot/${FIXTURE_OS}/os.toml`,
            OS_TOML.replace(
              /^cmdline = .*$/m,
              'cmdline = "console=ttyS0 loglevel=6 astral.host={{ hostname }} ' +
                'astral.serial={{ machine.inventory.serial }}"',
            ),
          );
          const macUrl = row.mac.replaceAll(":", "-");
          const result = await runLab({
            firmware: row.firmware,
            nic: row.nic,
            tree,
            server: uuidServer(dir),
            mac: row.mac,
            sga: false,
            qemuExtra: [
              "-uuid",
              UUID,
              "-smbios",
              `type=1,serial=${SERIAL},manufacturer=Astral Labs,product=Lab VM`,
            ],
            prefix: "abm",
            timeoutMs: 150_000,
            logger: silentLogger,
          });
          summary.push(`${row.firmware} + ${row.nic}:\n${formatStages(result.stages)}`);
          const paths = requests(result);
          const why = `${result.error}\n${paths.join("\n")}\n--- serial\n` +
            result.serial.slice(-2000);
          assert.ok(result.ok, why);
          assert.ok(result.serial.includes(MARKER), why);

          // One script request, the DHCP answer's URL with iPXE's settings expanded.
          assert.deepEqual(paths.filter((p) => p.includes("/boot.ipxe")), [
            `200 /boot.ipxe?mac=${macUrl}&uuid=${UUID}&serial=${SERIAL}` +
            `&manufacturer=Astral%20Labs&product=Lab%20VM&buildarch=${row.buildarch}` +
            `&platform=${row.platform}`,
          ], why);
          assert.ok(!paths.some((p) => p.includes("/choose/")), why);
          // The entry's host name, and the serial it reported, rendered into its kernel line.
          assert.match(
            result.serial,
            new RegExp(`command line: .*astral\\.host=inv-uuid-1 astral\\.serial=${SERIAL}`),
            why,
          );

          const list = await machineCommand(dir, ["list"]);
          assert.match(
            list,
            new RegExp(
              `^${row.mac} +inv-uuid-1 +10\\.77\\.0\\.1\\d\\d +tiny +chosen +${UUID} +${SERIAL} `,
              "m",
            ),
            list,
          );
          const show = await machineCommand(dir, ["show", macUrl]);
          for (
            const want of [
              `^\\[\\[machine\\]\\] +by uuid ${UUID} \\(bound to this MAC\\)$`,
              `^ {2}manufacturer +Astral Labs$`,
              `^ {2}product +Lab VM$`,
              `^ {2}buildarch +${row.buildarch}$`,
              `^ {2}platform +${row.platform}$`,
              // What option 97 said in iPXE's DHCP request, read as the same UUID.
              `^ {2}dhcp uuid \\(97\\) +${UUID}$`,
              `^ {2}dhcp arch \\(93\\) +${row.dhcpArch}$`,
              `^ {2}user class \\(77\\) +iPXE$`,
            ]
          ) {
            assert.match(show, new RegExp(want, "m"), show);
          }
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
    console.log(summary.join("\n\n"));
  },
});
