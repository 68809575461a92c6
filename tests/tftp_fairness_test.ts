/**
 * TFTP on a shared boot network, with the program as shipped (`main.ts serve`) in namespaces:
 * one address flooding stalled requests cannot lock out another client, and the server answers
 * only on its own interface. Needs root (namespaces), tftp-hpa, atftp, tcpdump.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DENO_NS_FLAGS, jsonLines, repoPath, spawnDeno } from "./dhcp_harness.ts";
import {
  atftp,
  CLIENT_IP,
  fetchWith,
  OTHER_IP,
  OTHER_SERVER_IP,
  randomBytes,
  SERVER_IP,
  sha256File,
  TFTP_HPA,
  TftpLab,
} from "./tftp_harness.ts";

const MiB = 1 << 20;
/** The attacker's address, a second one on the client namespace's link. */
const ATTACKER_IP = "10.203.0.3";
const PER_CLIENT = 4;
const REFUSAL = "too many transfers from your address";

/** Transfer sockets of the server: its UDP sockets other than port 69. */
async function transferSockets(lab: TftpLab): Promise<number> {
  const ss = await lab.serverNs.exec(["ss", "-Huan"]);
  return ss.stdout.split("\n").filter((l) => l.includes(SERVER_IP) && !/:69\s/.test(l)).length;
}

Deno.test({
  name: "300 stalled TFTP requests from one address do not stop another client's transfer",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await TftpLab.create();
    const hash = await sha256File(await lab.put("boot.bin", randomBytes(MiB)));
    await lab.clientNs.exec(["ip", "addr", "add", `${ATTACKER_IP}/24`, "dev", "eth0"]);
    const server = await lab.startShipped({ max_per_client: PER_CLIENT });
    const attack = spawnDeno(lab.clientNs, "tests/tftp_stall_client.ts", [
      ...["--server", SERVER_IP, "--bind", ATTACKER_IP, "--file", "boot.bin"],
      ...["--count", "300", "--seconds", "25", "--every-ms", "500"],
    ]);
    try {
      await t.step("the stalled requests hold at most max_per_client transfers", async () => {
        // Sampled over 3 s of attack, before any other client asks.
        let most = 0;
        for (let i = 0; i < 15; i++) {
          await new Promise((r) => setTimeout(r, 200));
          most = Math.max(most, await transferSockets(lab));
        }
        console.log(`  transfer sockets during the attack: at most ${most}`);
        assert.ok(most >= 1, "the attack is running");
        assert.ok(most <= PER_CLIENT, `${most} transfer sockets`);
      });
      for (const spec of [TFTP_HPA, atftp(1468, 4)]) {
        await t.step(`${spec.name} from ${CLIENT_IP} gets the file meanwhile`, async () => {
          const got = await fetchWith(lab, spec, "boot.bin", { timeoutMs: 30_000 });
          assert.equal(got.result.code, 0, got.result.stderr + server.output.slice(-2000));
          assert.equal(got.sha256, hash);
          assert.ok(got.seconds < 15, `${got.seconds} s`);
          console.log(`  ${spec.name}: 1 MiB in ${got.seconds.toFixed(2)} s under attack`);
        });
      }
    } finally {
      await attack.finished(60_000);
    }
    const [seen] = jsonLines(attack);
    await t.step(
      "the attacker was refused, with the reason, and the log did not flood",
      async () => {
        console.log(`  attacker: ${JSON.stringify(seen)}`);
        assert.ok(seen, attack.output);
        const refusals = Number((seen.errors as Record<string, number>)[REFUSAL] ?? 0);
        assert.ok(refusals > 1000, `${refusals} refusals`);
        const lines = lab.serverLog().filter((l) => l.msg === "request refused");
        assert.ok(lines.every((l) => l.reason === REFUSAL && l.client !== `${CLIENT_IP}`));
        // One line per 10 s per address, not one per refusal.
        assert.ok(lines.length >= 1 && lines.length <= 4, `${lines.length} refusal lines`);
        const metrics = await lab.client(
          ["curl", "-sS", `http://${SERVER_IP}:8080/metrics`],
          10_000,
        );
        const refused = metrics.stdout.match(
          /^astralboot_tftp_transfers_total\{result="refused"\} (\d+)/m,
        );
        assert.ok(refused && Number(refused[1]) >= refusals, metrics.stdout.slice(0, 500));
      },
    );
  },
});

Deno.test({
  name: "TFTP answers only on its interface",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await TftpLab.create();
    const hash = await sha256File(await lab.put("boot.bin", randomBytes(100_000)));
    const other = await lab.addOtherLink();
    const pcap = join(lab.scratch, "eth1.pcap");
    /** Requests from the other link for the server's boot address: a file, a missing one, garbage. */
    const ask = async () => {
      const rrq = (name: string) =>
        Array.from(
          new TextEncoder().encode(`\0\x01${name}\0octet\0`),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
      const input = {
        server: SERVER_IP,
        port: 69,
        waitMs: 2000,
        packets: [rrq("boot.bin"), rrq("nope.bin"), "0001"],
      };
      const r = await other.exec(
        ["deno", "run", ...DENO_NS_FLAGS, repoPath("tests/tftp_raw_client.ts")],
        { stdin: JSON.stringify(input), timeoutMs: 60_000 },
      );
      return JSON.parse(r.stdout) as { reply: string | null }[];
    };
    const capture = () =>
      lab.serverNs.spawn([
        ...["tcpdump", "-i", "eth1", "-n", "--immediate-mode", "-w", pcap, "udp"],
      ]);
    const fromServer = async () => {
      const r = await lab.serverNs.exec(
        [
          "tcpdump",
          "-r",
          pcap,
          "-n",
          `udp and (src host ${SERVER_IP} or src host ${OTHER_SERVER_IP})`,
        ],
        { check: false },
      );
      return r.stdout.split("\n").filter(Boolean);
    };
    const requests = async () => {
      const r = await lab.serverNs.exec(
        ["tcpdump", "-r", pcap, "-n", `udp and src host ${OTHER_IP} and dst port 69`],
        { check: false },
      );
      return r.stdout.split("\n").filter(Boolean);
    };

    await t.step("control: bound by address alone, the server answers over eth1", async () => {
      await lab.startOurs();
      const replies = await ask();
      await lab.stopServer();
      assert.ok(replies.every((r) => r.reply !== null), JSON.stringify(replies));
    });

    await t.step("as shipped: nothing from the server on eth1, not even from port 69", async () => {
      await lab.startShipped();
      const dump = capture();
      try {
        // tcpdump has no ready signal with -w.
        await new Promise((r) => setTimeout(r, 1500));
        const replies = await ask();
        assert.deepEqual(replies.map((r) => r.reply), [null, null, null]);
        const good = await fetchWith(lab, TFTP_HPA, "boot.bin", { timeoutMs: 30_000 });
        assert.equal(good.sha256, hash, good.result.stderr);
      } finally {
        dump.kill("SIGINT");
        await dump.output();
      }
      assert.equal((await requests()).length, 3, "the capture saw the requests");
      assert.deepEqual(await fromServer(), []);
      // The server never even saw them.
      assert.ok(!lab.serverLog().some((l) => String(l.client ?? "").startsWith(OTHER_IP)));
    });
  },
});
