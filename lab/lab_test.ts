import assert from "node:assert/strict";
import { countTftp, qemuArgs, sweepStale } from "./lab.ts";
import { Netns, run } from "./netns.ts";
import { memoryLogger } from "../log.ts";
import { labConfig, standInGrubConfig, standInScript } from "./servers.ts";
import { OS_TOML } from "./fixture.ts";
import { loadConfig } from "../app/config.ts";

Deno.test("qemuArgs picks firmware, NIC ROM and console per combination", async (t) => {
  const table = [
    { firmware: "bios", nic: "virtio-net-pci", has: ["sga", "virtio-net-pci,netdev=n0,mac=m"] },
    { firmware: "bios", nic: "e1000", has: ["sga", "e1000,netdev=n0,mac=m"] },
    // OVMF drives virtio-net itself: the ROM goes so that its own PXE client runs.
    { firmware: "uefi", nic: "virtio-net-pci", has: ["virtio-net-pci,netdev=n0,mac=m,romfile="] },
    // OVMF has no e1000 driver: the ROM's EFI driver must stay.
    { firmware: "uefi", nic: "e1000", has: ["e1000,netdev=n0,mac=m"] },
    // Secure Boot: the 4M build with Microsoft's keys needs SMM, q35 and a secure flash.
    {
      firmware: "uefi-secure",
      nic: "virtio-net-pci",
      has: [
        "virtio-net-pci,netdev=n0,mac=m,romfile=",
        "q35,smm=on",
        "driver=cfi.pflash01,property=secure,value=on",
        "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
      ],
    },
    // HTTP boot: OVMF's PXE clients turned off through fw_cfg, its own HTTP client on virtio.
    {
      firmware: "uefi-http",
      nic: "virtio-net-pci",
      has: [
        "virtio-net-pci,netdev=n0,mac=m,romfile=",
        "name=opt/org.tianocore/IPv4PXESupport,string=n",
        "name=opt/org.tianocore/IPv6PXESupport,string=n",
      ],
    },
    // ARM64: another QEMU, the virt machine, AAVMF, 1 GiB.
    {
      firmware: "arm64",
      nic: "virtio-net-pci",
      has: [
        "qemu-system-aarch64",
        "virt",
        "max,pauth-impdef=on",
        "1024",
        "virtio-net-pci,netdev=n0,mac=m,romfile=",
        "if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
      ],
    },
  ] as const;
  for (const row of table) {
    await t.step(`${row.firmware} ${row.nic}`, () => {
      const args = qemuArgs({ firmware: row.firmware, nic: row.nic, mac: "m", varsFile: "/v.fd" });
      for (const a of row.has) assert.ok(args.includes(a), `${a} in ${args.join(" ")}`);
      for (
        const a of ["-no-reboot", "tcg", "stdio", "tap,id=n0,ifname=tap0,script=no,downscript=no"]
      ) {
        assert.ok(args.includes(a), a);
      }
      const pflash = args.filter((a) => a.startsWith("if=pflash"));
      assert.equal(pflash.length, row.firmware === "bios" ? 0 : 2);
      if (row.firmware !== "bios") assert.ok(pflash[1]!.endsWith("file=/v.fd"));
      assert.equal(args.includes("sga"), row.firmware === "bios");
      assert.equal(
        args[0],
        row.firmware === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64",
      );
      if (row.firmware !== "arm64") assert.equal(args[args.indexOf("-m") + 1], "512");
    });
  }
  await t.step("the NIC's place in the boot order", () => {
    const args = qemuArgs({
      firmware: "uefi",
      nic: "e1000",
      mac: "m",
      varsFile: "/v",
      nicBootIndex: 0,
    });
    assert.ok(args.includes("e1000,netdev=n0,mac=m,bootindex=0"), args.join(" "));
  });
  await t.step("memory given by the caller wins", () => {
    const args = qemuArgs({ firmware: "bios", nic: "e1000", mac: "m", memoryMb: 1024 });
    assert.equal(args[args.indexOf("-m") + 1], "1024");
  });
  await t.step("BIOS without sga", () => {
    const args = qemuArgs({ firmware: "bios", nic: "e1000", mac: "m", sga: false });
    assert.ok(!args.includes("sga"));
    assert.ok(args.includes("e1000,netdev=n0,mac=m"));
  });
  await t.step("UEFI without a writable vars file is refused", () => {
    assert.throws(() => qemuArgs({ firmware: "uefi", nic: "e1000", mac: "m" }), /copy of its vars/);
  });
  await t.step("a card the firmware cannot boot from is refused", () => {
    assert.throws(
      () => qemuArgs({ firmware: "uefi-secure", nic: "e1000", mac: "m", varsFile: "/v.fd" }),
      /uefi-secure boots from virtio-net-pci only/,
    );
  });
});

Deno.test("countTftp counts requests to port 69 and the transfers tshark decoded", () => {
  const at = (udp: { src: number; dst: number }, tftp?: { opcode: number }) => ({
    time: 1,
    src: "a",
    dst: "b",
    udp,
    ...(tftp ? { tftp } : {}),
  });
  assert.equal(
    countTftp([
      at({ src: 68, dst: 67 }),
      at({ src: 1001, dst: 69 }),
      at({ src: 5000, dst: 1001 }, { opcode: 3 }),
      at({ src: 1001, dst: 5000 }, { opcode: 4 }),
      { time: 2, src: "a", dst: "b" },
    ]),
    3,
  );
  assert.equal(countTftp([at({ src: 68, dst: 67 })]), 0);
});

Deno.test("labConfig is a config.toml Astral Boot accepts for the lab bridge", async (t) => {
  const rows = [
    { secureBoot: undefined, dhcp: undefined, mode: "server" },
    { secureBoot: false, dhcp: "proxy", mode: "proxy" },
    { secureBoot: true, dhcp: "server", mode: "server" },
    { secureBoot: true, dhcp: "proxy", mode: "proxy" },
  ] as const;
  for (const row of rows) {
    await t.step(`secure boot ${row.secureBoot} ${row.dhcp ?? "(default)"}`, () => {
      const text = labConfig(
        {
          iface: "br0",
          range: ["10.77.0.100", "10.77.0.150"],
          workDir: "/tmp/w",
          secureBoot: row.secureBoot,
          dhcp: row.dhcp,
        },
        { httpPort: 8081, os: "tiny", logLevel: "info" },
      );
      const config = loadConfig(text, {
        lookup: (name) => ({ name, address: "10.77.0.1", netmask: "255.255.255.0" }),
      });
      assert.equal(config.interface, "br0");
      assert.equal(config.server_ip, "10.77.0.1");
      assert.equal(config.data_dir, "/tmp/w/data");
      assert.equal(config.dhcp.mode, row.mode);
      assert.deepEqual(config.dhcp.range, ["10.77.0.100", "10.77.0.150"]);
      assert.equal(config.http.port, 8081);
      assert.equal(config.boot.default, "tiny");
      assert.equal(config.boot.menu_timeout, 1);
      assert.equal(config.boot.secure_boot, row.secureBoot ?? false);
    });
  }
});

Deno.test("standInGrubConfig boots what os.toml names over TFTP", () => {
  assert.equal(
    standInGrubConfig(OS_TOML, "tiny", "10.77.0.1"),
    [
      "linux (tftp,10.77.0.1)/image/tiny/vmlinuz console=ttyS0 quiet",
      "initrd (tftp,10.77.0.1)/image/tiny/initrd.gz",
      "boot",
      "",
    ].join("\n"),
  );
});

Deno.test("standInScript boots what os.toml names, with initrd= for iPXE EFI", () => {
  assert.equal(
    standInScript(OS_TOML, "tiny", "http://10.77.0.1:8080"),
    [
      "#!ipxe",
      "kernel http://10.77.0.1:8080/image/tiny/vmlinuz initrd=initrd.gz console=ttyS0 quiet",
      "initrd http://10.77.0.1:8080/image/tiny/initrd.gz",
      "boot",
      "",
    ].join("\n"),
  );
});

Deno.test("sweepStale removes empty lab namespaces a killed run left, never busy ones", async () => {
  const logger = memoryLogger();
  const empty = await Netns.create("ablsw");
  const busy = await Netns.create("ablsw");
  const sleeper = busy.spawn(["sleep", "120"], { stdout: "null", stderr: "null" });
  try {
    // Now: both are young, so both stay.
    await sweepStale("ablsw", logger);
    let list = (await run(["ip", "netns", "list"])).stdout;
    assert.ok(list.includes(empty.name) && list.includes(busy.name));
    // Eleven minutes on: the empty one is stale, the one with a process is not.
    await sweepStale("ablsw", logger, Date.now() + 11 * 60_000);
    list = (await run(["ip", "netns", "list"])).stdout;
    assert.ok(!list.includes(empty.name), list);
    assert.ok(list.includes(busy.name), list);
    // Only this test's two count: a run killed earlier may have left other empty ones.
    const ours = [empty.name, busy.name];
    assert.deepEqual(
      logger.lines.filter((l) => l.level === "warn" && ours.includes(String(l.fields.ns)))
        .map((l) => l.fields.ns),
      [empty.name],
    );
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await busy.dispose();
    await empty.dispose();
  }
});

Deno.test("dispose removes a namespace whose file has a mount stacked on it", async () => {
  const listed = async (name: string) =>
    (await run(["ip", "netns", "list"])).stdout.split("\n").some((l) => l.split(" ")[0] === name);
  const stacked = async () => {
    const ns = await Netns.create("ablds");
    await run(["mount", "--bind", `/run/netns/${ns.name}`, `/run/netns/${ns.name}`]);
    return ns;
  };
  const [trap, ns] = [await stacked(), await stacked()];
  try {
    // One `ip netns del` leaves such a namespace listed, as a CI run once saw.
    const once = await run(["ip", "netns", "del", trap.name], { check: false });
    assert.match(once.stderr, /Device or resource busy/);
    assert.equal(await listed(trap.name), true);
    await ns.dispose();
    assert.equal(await listed(ns.name), false);
  } finally {
    await run(["ip", "netns", "del", trap.name], { check: false });
    await run(["ip", "netns", "del", ns.name], { check: false });
  }
});
