import assert from "node:assert/strict";
import { formatSummary } from "./summary.ts";

Deno.test("formatSummary: one aligned row per boot, marker and run time, TFTP packets", () => {
  const text = formatSummary([
    {
      run: { firmware: "bios", nic: "virtio-net-pci", dhcp: "server" },
      result: { ok: true, stages: [{ name: "marker", ms: 12_340 }], tftpPackets: 0 },
      runMs: 19_000,
    },
    {
      run: { firmware: "uefi-http", nic: "virtio-net-pci", dhcp: "proxy" },
      result: { ok: true, stages: [{ name: "marker", ms: 24_490 }], tftpPackets: 0 },
      runMs: 31_250,
    },
    {
      run: { firmware: "arm64", nic: "virtio-net-pci", dhcp: "server" },
      result: { ok: false, stages: [{ name: "dhcp-discover", ms: 8_000 }], tftpPackets: 1800 },
      runMs: 160_000,
    },
  ]);
  assert.equal(
    text,
    [
      "firmware   nic             dhcp    result  marker      run  tftp packets",
      "bios       virtio-net-pci  server  ok      12.3 s   19.0 s             0",
      "uefi-http  virtio-net-pci  proxy   ok      24.5 s   31.3 s             0",
      "arm64      virtio-net-pci  server  FAILED       -  160.0 s          1800",
    ].join("\n"),
  );
});
