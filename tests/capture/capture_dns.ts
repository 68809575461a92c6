/**
 * Captures real DNS messages into protocols/dns/testdata/ as golden vectors: queries as `dig`
 * sends them and dnsmasq's answers to them.
 *
 * Everything runs inside one throwaway network namespace (prefix "abc") on its loopback:
 * dnsmasq answers on 127.0.0.1:53 from records given on its command line (no upstream, no
 * hosts file), tshark records port 53, and dig asks. For each exchange the script writes
 * `<name>_query.bin` and `<name>_answer.bin` (DNS messages; the TCP length prefix removed) and
 * `<name>.txt`: the dig command and tshark's decode of both messages, for review.
 *
 * Run as root: deno run -A tests/capture/capture_dns.ts
 * CAPTURE_OUT=/some/dir/ tries a re-capture without touching testdata.
 *
 * @module
 */
import { Netns, stopAndCollect } from "../netns.ts";

const OUT = Deno.env.get("CAPTURE_OUT") ??
  new URL("../../protocols/dns/testdata/", import.meta.url).pathname;

/** One exchange: its name and dig's arguments after `dig @127.0.0.1`. */
const EXCHANGES: [string, string[]][] = [
  // dig's defaults: RD, AD, EDNS with a cookie.
  ["a", ["web-1.erf", "A"]],
  ["ptr", ["-x", "10.76.0.50"]],
  ["tcp", ["+tcp", "web-1.erf", "A"]],
  // Two answers: the second owner name is a pointer to the first.
  ["multi", ["multi.erf", "A"]],
  ["noedns_aaaa", ["+noedns", "web-1.erf", "AAAA"]],
  ["nxdomain", ["nothing.erf", "A"]],
  ["mx", ["mail.erf", "MX"]],
];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function unhex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

if (import.meta.main) {
  await Deno.mkdir(OUT, { recursive: true });
  const tmp = await Deno.makeTempDir({ prefix: "abc-dns-" });
  const ns = await Netns.create("abc");
  try {
    const pcap = `${tmp}/dns.pcap`;
    const dump = ns.spawn(["tshark", "-q", "-i", "lo", "-w", pcap, "-f", "port 53"]);
    await sleep(2000);
    const dnsmasq = ns.spawn([
      "dnsmasq",
      "--no-daemon",
      "--conf-file=/dev/null",
      "--no-resolv",
      "--no-hosts",
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      `--pid-file=${tmp}/dnsmasq.pid`,
      "--user=root",
      "--local=/erf/",
      "--host-record=web-1.erf,10.76.0.50",
      "--host-record=multi.erf,10.76.0.60",
      "--host-record=multi.erf,10.76.0.61",
      "--mx-host=mail.erf,web-1.erf,10",
    ]);
    await sleep(1000);
    const commands: string[] = [];
    for (const [, args] of EXCHANGES) {
      const cmd = ["dig", "@127.0.0.1", "+tries=1", "+time=2", ...args];
      commands.push(cmd.join(" "));
      await ns.exec(cmd, { check: false, timeoutMs: 10_000 });
      await sleep(300);
    }
    await sleep(1000);
    await stopAndCollect(dump);
    await stopAndCollect(dnsmasq);
    // One line per DNS message: frame, UDP payload or TCP payload (with its length prefix).
    const fields = new Deno.Command("tshark", {
      args: ["-r", pcap, "-Y", "dns", "-T", "fields", "-e", "frame.number", "-e", "udp.payload"]
        .concat(["-e", "tcp.payload"]),
      stdout: "piped",
    }).outputSync();
    const rows = new TextDecoder().decode(fields.stdout).trim().split("\n").map((l) => {
      const [frame, udp, tcp] = l.split("\t");
      const bytes = udp ? unhex(udp) : unhex(tcp!).subarray(2);
      return { frame: Number(frame), bytes };
    });
    if (rows.length !== EXCHANGES.length * 2) {
      throw new Error(`expected ${EXCHANGES.length * 2} DNS messages, got ${rows.length}`);
    }
    EXCHANGES.forEach(([name], i) => {
      const [query, answer] = [rows[2 * i]!, rows[2 * i + 1]!];
      Deno.writeFileSync(`${OUT}/${name}_query.bin`, query.bytes);
      Deno.writeFileSync(`${OUT}/${name}_answer.bin`, answer.bytes);
      const decode = (frame: number) =>
        new TextDecoder().decode(
          new Deno.Command("tshark", {
            args: ["-r", pcap, "-Y", `frame.number == ${frame}`, "-O", "dns"],
            stdout: "piped",
          }).outputSync().stdout,
        ).split("\n").filter((l) => !/^(Frame|Ethernet|Linux|Internet|User|Transmission)/.test(l))
          .join("\n").trim();
      Deno.writeTextFileSync(
        `${OUT}/${name}.txt`,
        `# ${commands[i]} (answered by dnsmasq ${
          new TextDecoder().decode(
            new Deno.Command("dnsmasq", { args: ["--version"], stdout: "piped" }).outputSync()
              .stdout,
          ).split("\n")[0]!.split(" ")[2]
        })\n\n## ${name}_query.bin\n${decode(query.frame)}\n\n## ${name}_answer.bin\n${
          decode(answer.frame)
        }\n`,
      );
    });
    console.log(`wrote ${EXCHANGES.length} exchanges to ${OUT}`);
  } finally {
    await ns.dispose();
    await Deno.remove(tmp, { recursive: true });
  }
}
