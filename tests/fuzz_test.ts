/**
 * The CI share of the fuzz runs of `tests/fuzz.ts`: 100 000 mutated packets against the
 * decoders, the DHCP policy and the TFTP server in process, 10 000 at the DHCP server's real
 * socket loop inside network namespaces, 50 000 mutated DNS queries at the decoder and the DNS
 * policy and 10 000 at the DNS server loop on loopback, and the packets fuzzing once found.
 * The long run (10^6 packets and more) is `deno task fuzz`.
 */
import assert from "node:assert/strict";
import { MalformedPacketError } from "../net/bytes.ts";
import { decodeDhcp, encodeDhcp } from "../protocols/dhcp/packet.ts";
import { decodeTftp } from "../protocols/tftp/packet.ts";
import {
  dhcpCaptures,
  feedDhcp,
  formatReport,
  fuzzDhcpHandler,
  fuzzDhcpNetns,
  fuzzDhcpPolicy,
  fuzzDnsPolicyRun,
  fuzzDnsServer,
  fuzzTftpServer,
} from "./fuzz.ts";

/** Fixed in CI, so that a failure here replays with `deno task fuzz --seed 1`. */
const SEED = 1;

Deno.test("fuzz: 100 000 mutated DHCP and TFTP packets in process, nothing breaks", async (t) => {
  await t.step("dhcp-policy: 50 000 through decodeDhcp, the handler and encodeReply", async () => {
    const r = await fuzzDhcpPolicy({ packets: 50_000, seed: SEED });
    console.log(formatReport(r));
    // Both paths must be exercised, or the mutator is too gentle or too rough to mean anything.
    assert.ok(r.counts.decoded! > 5000 && r.counts.rejected! > 5000, formatReport(r));
    for (const kind of ["offer", "ack", "nak", "proxy-offer", "proxy-ack"]) {
      assert.ok(r.counts[kind]! > 50, `too few ${kind}: ${formatReport(r)}`);
    }
  });
  await t.step(
    "tftp-server: 50 000 requests, ACKs, DATA and ERRORs at a running server",
    async () => {
      const r = await fuzzTftpServer({ packets: 50_000, seed: SEED });
      console.log(formatReport(r));
      assert.ok(r.counts["transfer done"]! > 500, formatReport(r));
      assert.ok(r.counts["transfer failed"]! > 500, formatReport(r));
      assert.ok(r.counts["transfer refused"]! > 100, formatReport(r));
    },
  );
});

Deno.test("fuzz: 60 000 mutated DNS queries at the decoder, the policy and the server loop", async (t) => {
  await t.step(
    "dns-policy: 50 000 through decodeDns, the policy and the answer's encoding",
    async () => {
      const r = await fuzzDnsPolicyRun({ packets: 50_000, seed: SEED });
      console.log(formatReport(r));
      assert.ok(r.counts.decoded! > 5000 && r.counts.rejected! > 5000, formatReport(r));
      for (
        const result of ["answer", "nodata", "nxdomain", "forwarded", "refused", "servfail", "busy"]
      ) {
        assert.ok(r.counts[result]! > 50, `too few ${result}: ${formatReport(r)}`);
      }
    },
  );
  await t.step(
    "dns-server: 10 000 datagrams and TCP frames at a running server on loopback",
    async () => {
      const r = await fuzzDnsServer({ packets: 10_000, seed: SEED });
      console.log(formatReport(r));
      assert.ok(r.counts["dropped malformed"]! > 1000, formatReport(r));
      assert.ok(r.counts.answer! > 50, formatReport(r));
    },
  );
});

Deno.test("fuzz: 10 000 mutated datagrams at the DHCP server in namespaces; it still serves", async () => {
  const reports = await fuzzDhcpNetns({ packets: 10_000, seed: SEED, rate: 2000 });
  for (const r of reports) {
    console.log(formatReport(r));
    // Under load the kernel may drop some before the server reads them; most must arrive.
    assert.ok(r.counts["datagrams the server took"]! > 0.5 * r.packets, formatReport(r));
  }
});

const FOUND = new URL("./testdata/fuzz/", import.meta.url);

Deno.test("fuzz: packets fuzzing found decode or drop, and every reply encodes", async (t) => {
  const found = [...Deno.readDirSync(FOUND)].map((e) => e.name).sort();
  assert.ok(found.length > 0);
  for (const name of found) {
    await t.step(name, async () => {
      const bytes = Deno.readFileSync(new URL(name, FOUND));
      if (name.startsWith("dhcp_")) await feedDhcp(fuzzDhcpHandler(dhcpCaptures()), bytes);
      else {
        assert.ok(name.startsWith("tftp_"), `${name}: dhcp_ or tftp_?`);
        assert.throws(() => decodeTftp(bytes), MalformedPacketError);
      }
    });
  }
  await t.step("dhcp_option82_joined.bin is malformed: an 82 of 422 bytes", () => {
    const bytes = Deno.readFileSync(new URL("dhcp_option82_joined.bin", FOUND));
    assert.throws(() => decodeDhcp(bytes), MalformedPacketError);
  });
  await t.step(
    "the longest option 82 (255 bytes), no option 57: every reply fits 576",
    async () => {
      const captures = dhcpCaptures();
      for (const name of ["ipxe_bios_discover", "ovmf_discover", "udhcpc_request"]) {
        const p = decodeDhcp(captures.get(name)!);
        p.options.delete(57);
        p.options.set(82, new Uint8Array(255).fill(0x82));
        const replies = await feedDhcp(
          fuzzDhcpHandler(captures),
          encodeDhcp(p, { maxSize: 65535 }),
        );
        assert.ok(replies && replies.length > 0, name);
        for (const r of replies) assert.equal(decodeDhcp(r).options.get(82)?.length, 255);
      }
    },
  );
});
