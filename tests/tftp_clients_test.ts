/**
 * Real TFTP clients (tftp-hpa, atftp, curl) against our server, in a namespace pair:
 * byte-identical files of 1 MiB and 40 MiB, block-number rollover, netascii, 20 transfers at
 * once. Needs root (namespaces) and the Debian clients.
 */
import assert from "node:assert/strict";
import {
  atftp,
  type ClientSpec,
  curl,
  fetchWith,
  randomBytes,
  sha256File,
  TFTP_HPA,
  TftpLab,
} from "./tftp_harness.ts";
import { until } from "./dhcp_harness.ts";

const MiB = 1 << 20;

Deno.test({
  name: "real clients fetch 1 MiB and 40 MiB byte-identical from our server",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await TftpLab.create();
    const sizes = { "1m.bin": 1 * MiB, "40m.bin": 40 * MiB };
    const hashes: Record<string, string> = {};
    for (const [name, size] of Object.entries(sizes)) {
      hashes[name] = await sha256File(await lab.put(name, randomBytes(size)));
    }
    // Every socket bound to the interface, as `astralboot serve` runs it.
    const server = await lab.startOurs(["--interface", "eth0"]);
    const clients: ClientSpec[] = [TFTP_HPA, atftp(1468, 4), atftp(1468, 16), atftp(), curl(1468)];
    for (const spec of clients) {
      for (const [name, size] of Object.entries(sizes)) {
        await t.step(`${spec.name}: ${name}`, async () => {
          const doneLines = () =>
            lab.transfers().filter((l) => l.file === name && l.msg === "transfer done");
          const before = doneLines().length;
          const got = await fetchWith(lab, spec, name, { timeoutMs: 300_000 });
          assert.equal(got.result.code, 0, got.result.stderr + got.result.stdout);
          assert.equal(
            got.sha256,
            hashes[name],
            `${spec.name} ${name}\n${server.output.slice(-2000)}`,
          );
          await Deno.remove(got.local);
          // The server gathers its log lines for a few ms: they come a moment after the
          // client is done.
          const last = await until(
            () => doneLines()[before],
            5_000,
            "the server to log the transfer",
          );
          assert.equal(last.bytes, size);
          console.log(
            `  ${spec.name} ${name}: ${got.seconds.toFixed(2)} s, blksize ${last.blksize}, ` +
              `windowsize ${last.windowsize}, ${last.mbps} MB/s, ${last.retransmits} retransmits`,
          );
          // 40 MiB in 512-byte blocks is 81 921 blocks: the 16-bit block number wrapped past
          // 65535 (to 0), and the hash above shows the client put every block in its place.
          if (size === 40 * MiB && last.blksize === 512) assert.equal(last.blocks, 81_921);
        });
      }
    }
    await t.step("every transfer above ended 'done', none failed", () => {
      const lines = lab.transfers();
      assert.equal(lines.filter((l) => l.msg === "transfer done").length, clients.length * 2);
      assert.deepEqual(lines.filter((l) => l.msg !== "transfer done"), []);
    });
  },
});

Deno.test({
  name: "tftp-hpa in ascii mode gets the file back as it is on disk (netascii both ways)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await TftpLab.create();
    const text = "line one\nline two\r\nbare\rCR\n".repeat(200);
    await lab.put("notes.txt", new TextEncoder().encode(text));
    await lab.startOurs();
    const local = `${lab.scratch}/notes.txt`;
    const r = await lab.client([
      "tftp",
      "-m",
      "netascii",
      "10.203.0.1",
      "-c",
      "get",
      "notes.txt",
      local,
    ], 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(local), text);
    // The server logs the transfer once the client's last ACK is in, which a loaded machine
    // may deliver after the client has already exited.
    let done = lab.transfers().find((l) => l.msg === "transfer done");
    for (let i = 0; !done && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      done = lab.transfers().find((l) => l.msg === "transfer done");
    }
    assert.equal(done?.mode, "netascii");
    // On the wire every LF became CR LF and every CR became CR NUL.
    const crlf = (text.match(/\n/g) ?? []).length + (text.match(/\r/g) ?? []).length;
    assert.equal(done?.bytes, text.length + crlf);
  },
});

Deno.test({
  name: "20 concurrent transfers from one client namespace all arrive intact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await TftpLab.create();
    const hashes: string[] = [];
    for (let i = 0; i < 4; i++) {
      hashes.push(await sha256File(await lab.put(`c${i}.bin`, randomBytes(MiB + i * 777))));
    }
    // One host asking for 20 at once is what max_per_client (default 4) refuses; lifted here.
    await lab.startOurs(["--interface", "eth0", "--max-per-client", "20"]);
    const specs = [TFTP_HPA, atftp(1468, 4), atftp(1468), curl(1468)];
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => fetchWith(lab, specs[i % 4]!, `c${i % 4}.bin`, { timeoutMs: 180_000 }),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    results.forEach((r, i) => {
      assert.equal(r.result.code, 0, `${specs[i % 4]!.name}: ${r.result.stderr}`);
      assert.equal(r.sha256, hashes[i % 4], `transfer ${i} (${specs[i % 4]!.name})`);
    });
    // The last lines reach the log a moment after the last client is done.
    const done = await until(
      () => {
        const lines = lab.transfers().filter((l) => l.msg === "transfer done");
        return lines.length >= 20 ? lines : undefined;
      },
      5_000,
      "20 transfers in the log",
    );
    assert.equal(done.length, 20);
    // Each came from its own client port, so the server ran 20 separate transfers.
    assert.equal(new Set(done.map((l) => l.client)).size, 20);
    console.log(`  20 transfers of ~1 MiB in ${seconds.toFixed(2)} s`);
  },
});

Deno.test({
  name: "main.ts serve -l DIR (as shipped) serves real clients through the local store",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await TftpLab.create();
    const hash = await sha256File(await lab.put("undionly.kpxe", randomBytes(MiB + 123)));
    await lab.startShipped();
    for (const spec of [TFTP_HPA, atftp(1468, 4), curl(1468)]) {
      for (const name of ["undionly.kpxe", "/tftp/undionly.kpxe"]) {
        await t.step(`${spec.name}: ${name}`, async () => {
          const got = await fetchWith(lab, spec, name, { timeoutMs: 120_000 });
          assert.equal(got.result.code, 0, got.result.stderr);
          assert.equal(got.sha256, hash);
        });
      }
    }
  },
});
