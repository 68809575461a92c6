import assert from "node:assert/strict";
import { type LabArgs, labCommand, LabUsageError, parseLabArgs } from "./main.ts";
import { silentLogger } from "../log.ts";

const server = "server" as const, proxy = "proxy" as const;
const virtio = "virtio-net-pci" as const, e1000 = "e1000" as const;

Deno.test("parseLabArgs reads the lab flags", async (t) => {
  const table: { args: string[]; want: Partial<LabArgs> }[] = [
    {
      args: [],
      want: { runs: [{ firmware: "bios", nic: virtio, dhcp: server }], timeoutMs: 150_000 },
    },
    {
      args: ["--firmware", "uefi", "--nic", "e1000"],
      want: { runs: [{ firmware: "uefi", nic: e1000, dhcp: server }] },
    },
    {
      args: ["--nic=virtio-net-pci"],
      want: { runs: [{ firmware: "bios", nic: virtio, dhcp: server }] },
    },
    { args: ["--timeout", "90"], want: { timeoutMs: 90_000 } },
    { args: ["--server", "dnsmasq", "--quiet"], want: { server: "dnsmasq", quiet: true } },
    { args: ["--pcap", "/tmp/x.pcap"], want: { pcap: "/tmp/x.pcap", sga: true } },
    { args: ["--no-sga"], want: { sga: false } },
    { args: ["--help"], want: { help: true } },
    // A firmware's first card is its default: uefi-secure boots from virtio only.
    {
      args: ["--firmware", "uefi-secure"],
      want: { runs: [{ firmware: "uefi-secure", nic: virtio, dhcp: server }] },
    },
    {
      args: ["--firmware=uefi", "--dhcp=proxy"],
      want: { runs: [{ firmware: "uefi", nic: virtio, dhcp: proxy }] },
    },
    {
      args: ["--firmware", "arm64"],
      want: { runs: [{ firmware: "arm64", nic: virtio, dhcp: server }] },
    },
    {
      args: ["--firmware", "uefi-http", "--dhcp", "proxy"],
      want: { runs: [{ firmware: "uefi-http", nic: virtio, dhcp: proxy }] },
    },
    {
      args: ["--all"],
      want: {
        runs: [
          { firmware: "bios", nic: virtio, dhcp: server },
          { firmware: "bios", nic: virtio, dhcp: proxy },
          { firmware: "bios", nic: e1000, dhcp: server },
          { firmware: "bios", nic: e1000, dhcp: proxy },
          { firmware: "uefi", nic: virtio, dhcp: server },
          { firmware: "uefi", nic: virtio, dhcp: proxy },
          { firmware: "uefi", nic: e1000, dhcp: server },
          { firmware: "uefi", nic: e1000, dhcp: proxy },
          { firmware: "uefi-secure", nic: virtio, dhcp: server },
          { firmware: "uefi-secure", nic: virtio, dhcp: proxy },
          { firmware: "uefi-http", nic: virtio, dhcp: server },
          { firmware: "uefi-http", nic: virtio, dhcp: proxy },
          { firmware: "arm64", nic: virtio, dhcp: server },
          { firmware: "arm64", nic: virtio, dhcp: proxy },
        ],
      },
    },
    // A flag pins its part of the matrix.
    {
      args: ["--all", "--nic", "e1000", "--dhcp", "server"],
      want: {
        runs: [
          { firmware: "bios", nic: e1000, dhcp: server },
          { firmware: "uefi", nic: e1000, dhcp: server },
        ],
      },
    },
    {
      args: ["--all", "--firmware", "arm64"],
      want: {
        runs: [
          { firmware: "arm64", nic: virtio, dhcp: server },
          { firmware: "arm64", nic: virtio, dhcp: proxy },
        ],
      },
    },
    // The dnsmasq stand-in hands out addresses itself: no proxy rows.
    {
      args: ["--all", "--server", "dnsmasq", "--firmware", "uefi"],
      want: {
        runs: [
          { firmware: "uefi", nic: virtio, dhcp: server },
          { firmware: "uefi", nic: e1000, dhcp: server },
        ],
      },
    },
  ];
  for (const row of table) {
    await t.step(row.args.join(" ") || "(none)", () => {
      const got = parseLabArgs(row.args);
      for (const [k, v] of Object.entries(row.want)) {
        assert.deepEqual(got[k as keyof LabArgs], v, k);
      }
    });
  }
});

Deno.test("parseLabArgs names the flag that is wrong", async (t) => {
  const table: { args: string[]; message: RegExp }[] = [
    {
      args: ["--firmware", "coreboot"],
      message: /--firmware must be bios, uefi, uefi-secure, uefi-http, arm64; got "coreboot"/,
    },
    {
      args: ["--firmware", "uefi-secure", "--nic", "e1000"],
      message: /--firmware uefi-secure boots from virtio-net-pci only/,
    },
    {
      args: ["--firmware", "arm64", "--nic", "e1000"],
      message: /--firmware arm64 boots from virtio-net-pci only/,
    },
    {
      args: ["--all", "--firmware", "arm64", "--nic", "e1000"],
      message: /--all: no firmware boots with that/,
    },
    { args: ["--dhcp", "relay"], message: /--dhcp must be server or proxy/ },
    {
      args: ["--dhcp", "proxy", "--server", "dnsmasq"],
      message: /--dhcp proxy needs --server astralboot/,
    },
    { args: ["--nic", "rtl8139"], message: /--nic must be virtio or e1000/ },
    { args: ["--timeout", "0"], message: /--timeout must be seconds/ },
    { args: ["--timeout", "soon"], message: /--timeout must be seconds/ },
    { args: ["--timeout"], message: /--timeout needs a value/ },
    { args: ["--server", "kea"], message: /--server must be astralboot or dnsmasq/ },
    { args: ["--frobnicate"], message: /unknown option "--frobnicate"/ },
  ];
  for (const row of table) {
    await t.step(row.args.join(" "), () => {
      assert.throws(() => parseLabArgs(row.args), (e: unknown) => {
        assert.ok(e instanceof LabUsageError);
        assert.match(e.message, row.message);
        return true;
      });
    });
  }
});

Deno.test("labCommand answers usage errors and --help with exit codes 2 and 0", async () => {
  let text = "";
  const write = (t: string) => text += t;
  assert.equal(await labCommand(["--nic", "tulip"], silentLogger, write), 2);
  assert.match(text, /^astralboot lab: --nic must be virtio or e1000/);
  text = "";
  assert.equal(await labCommand(["--help"], silentLogger, write), 0);
  assert.match(text, /^Usage: astralboot lab/);
});
