/**
 * Boot stage timings from a packet capture of the lab bridge.
 *
 * The capture is read back with tshark as tab-separated fields ({@linkcode TSHARK_FIELDS});
 * {@linkcode parseTsharkFields} turns those into packet records and {@linkcode stagesFromPackets}
 * finds the moments a PXE boot passes through. Pure, so tests feed it packets by hand. Works
 * for any server (Astral Boot, dnsmasq, a peer), since it only reads the wire.
 *
 * @module
 */

/** One stage of a PXE boot and when it happened, in ms after the VM started. */
export interface Stage {
  name: StageName;
  ms: number;
}

/** The stages, in the order a boot passes them. */
export const STAGE_NAMES = [
  "dhcp-discover",
  "dhcp-offer",
  "first-stage-tftp",
  "first-stage-http",
  "second-stage-tftp",
  "ipxe-dhcp",
  "boot-script",
  "kernel",
  "initrd",
  "marker",
] as const;

/** Name of one boot stage. */
export type StageName = typeof STAGE_NAMES[number];

/** What each stage means, for the timings table. */
export const STAGE_DESCRIPTIONS: Record<StageName, string> = {
  "dhcp-discover": "first DHCP discover",
  "dhcp-offer": "first DHCP offer",
  "first-stage-tftp": "first-stage TFTP done",
  "first-stage-http": "first stage over HTTP (UEFI HTTP boot)",
  "second-stage-tftp": "second stage (GRUB) over TFTP",
  "ipxe-dhcp": "iPXE DHCP done (ACK)",
  "boot-script": "boot script / grub.cfg fetched",
  "kernel": "kernel fetched",
  "initrd": "initrd fetched",
  "marker": "marker on serial",
};

/** The fields asked of tshark, in this order (`-T fields -e …`). */
export const TSHARK_FIELDS = [
  "frame.time_epoch",
  "ip.src",
  "ip.dst",
  "udp.srcport",
  "udp.dstport",
  "dhcp.option.dhcp",
  "dhcp.id",
  "dhcp.option.type",
  "tftp.opcode",
  "tftp.source_file",
  "tcp.stream",
  "tcp.srcport",
  "tcp.len",
  "tcp.seq",
  "tcp.ack",
  "http.request.uri",
] as const;

/** One captured frame, reduced to what the stages need. */
export interface Packet {
  /** Seconds since the epoch (capture clock = host clock). */
  time: number;
  src: string;
  dst: string;
  udp?: { src: number; dst: number };
  dhcp?: { type: number; xid: number; options: number[] };
  tftp?: { opcode: number; file?: string };
  /** seq and ack are tshark's relative numbers (per direction, from 0). */
  tcp?: { stream: number; src: number; len: number; seq: number; ack: number };
  httpUri?: string;
}

// DHCP message types (RFC 2132 §9.6).
const DHCP_DISCOVER = 1;
const DHCP_OFFER = 2;
const DHCP_REQUEST = 3;
const DHCP_ACK = 5;
// Options that mark iPXE: 77 user class "iPXE" and 175 iPXE encapsulated options.
const IPXE_OPTIONS = [77, 175];
const TFTP_RRQ = 1;
const TFTP_DATA = 3;

function int(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const n = text.startsWith("0x") ? Number.parseInt(text, 16) : Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** Parses `tshark -T fields -E separator=/t -E occurrence=f` output for {@linkcode TSHARK_FIELDS}. */
export function parseTsharkFields(text: string): Packet[] {
  const packets: Packet[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.split("\t");
    const get = (name: typeof TSHARK_FIELDS[number]) => f[TSHARK_FIELDS.indexOf(name)] ?? "";
    const time = Number(get("frame.time_epoch"));
    if (!Number.isFinite(time)) continue;
    const p: Packet = { time, src: get("ip.src"), dst: get("ip.dst") };
    const us = int(get("udp.srcport")), ud = int(get("udp.dstport"));
    if (us !== undefined && ud !== undefined) p.udp = { src: us, dst: ud };
    const dtype = int(get("dhcp.option.dhcp"));
    if (dtype !== undefined) {
      p.dhcp = {
        type: dtype,
        xid: int(get("dhcp.id")) ?? 0,
        options: get("dhcp.option.type").split(",").map((s) => Number(s)).filter(Number.isFinite),
      };
    }
    const op = int(get("tftp.opcode"));
    if (op !== undefined) p.tftp = { opcode: op, file: get("tftp.source_file") || undefined };
    const stream = int(get("tcp.stream"));
    if (stream !== undefined) {
      p.tcp = {
        stream,
        src: int(get("tcp.srcport")) ?? 0,
        len: int(get("tcp.len")) ?? 0,
        seq: int(get("tcp.seq")) ?? 0,
        ack: int(get("tcp.ack")) ?? 0,
      };
    }
    if (get("http.request.uri")) p.httpUri = get("http.request.uri");
    packets.push(p);
  }
  return packets.sort((a, b) => a.time - b.time);
}

/** What {@linkcode stagesFromPackets} needs besides the packets. */
export interface StageContext {
  /** Host time (ms since the epoch) the VM was started; stages are relative to it. */
  startedAt: number;
  /** File names (last path segment) of the kernel and the initrd. */
  kernel: string;
  initrd: string;
  /** Host time (ms since the epoch) the marker showed on serial, if it did. */
  markerAt?: number;
}

function basename(uri: string): string {
  const path = uri.split("?")[0] ?? "";
  return path.slice(path.lastIndexOf("/") + 1);
}

/** End of the TFTP transfers of the first file the client read: its last packet either way. */
function firstStageDone(packets: Packet[]): number | undefined {
  const first = packets.find((p) => p.tftp?.opcode === TFTP_RRQ && p.udp);
  if (!first?.tftp?.file) return undefined;
  // OVMF asks twice (a tsize probe it aborts, then the download), each from its own port.
  const tids = new Set(
    packets.filter((p) => p.tftp?.opcode === TFTP_RRQ && p.tftp.file === first.tftp!.file)
      .map((p) => `${p.src}:${p.udp!.src}`),
  );
  let last: number | undefined;
  for (const p of packets) {
    if (!p.udp) continue;
    if (tids.has(`${p.src}:${p.udp.src}`) || tids.has(`${p.dst}:${p.udp.dst}`)) last = p.time;
  }
  return last;
}

/**
 * Per TFTP read request: when its transfer ended (its last packet either way, before the
 * client's port asks again) and whether any data reached the client (a refusal sends none).
 */
function tftpFetches(packets: Packet[]): { file: string; done: number; data: boolean }[] {
  const rrqs = packets.filter((p) => p.tftp?.opcode === TFTP_RRQ && p.tftp.file && p.udp);
  return rrqs.map((req, i) => {
    const peer = `${req.src}:${req.udp!.src}`;
    const next = rrqs.slice(i + 1).find((r) => `${r.src}:${r.udp!.src}` === peer);
    let done = req.time, data = false;
    for (const p of packets) {
      if (!p.udp || p.time < req.time || (next && p.time >= next.time)) continue;
      const to = `${p.dst}:${p.udp.dst}`;
      if (`${p.src}:${p.udp.src}` !== peer && to !== peer) continue;
      done = p.time;
      if (to === peer && p.tftp?.opcode === TFTP_DATA) data = true;
    }
    return { file: req.tftp!.file!, done, data };
  });
}

/** The ACK answering iPXE's first DHCPREQUEST (the request carries option 77 or 175). */
function ipxeDhcp(packets: Packet[]): number | undefined {
  const req = packets.find((p) =>
    p.dhcp?.type === DHCP_REQUEST && p.dhcp.options.some((o) => IPXE_OPTIONS.includes(o))
  );
  if (!req) return undefined;
  return packets.find((p) =>
    p.time >= req.time && p.dhcp?.type === DHCP_ACK && p.dhcp.xid === req.dhcp!.xid
  )?.time;
}

/**
 * Per HTTP request: when the client had the whole response. That is the client's first ACK
 * of the response's last byte; a client that boots before acknowledging it (iPXE EFI leaves
 * the NIC then) is taken to have it when that byte was first sent. Retransmissions after a
 * loss move the first, spurious ones after the boot do not move the second.
 */
function httpFetches(packets: Packet[]): { uri: string; done: number }[] {
  const out: { uri: string; done: number }[] = [];
  const requests = packets.filter((p) => p.httpUri !== undefined && p.tcp);
  for (const req of requests) {
    const stream = req.tcp!.stream;
    const next = requests.find((r) => r.tcp!.stream === stream && r.time > req.time);
    // The next request on a kept-alive connection often carries the ACK, so it counts.
    const window = packets.filter((p) =>
      p.tcp?.stream === stream && p.time >= req.time && (!next || p.time <= next.time)
    );
    let end = -1, firstSent: number | undefined;
    for (const p of window) {
      // Server payload flows from the port the request went to.
      if (p.tcp!.src === req.tcp!.src || p.tcp!.len === 0) continue;
      const last = p.tcp!.seq + p.tcp!.len;
      if (last > end) {
        end = last;
        firstSent = p.time;
      }
    }
    if (firstSent === undefined) continue;
    const acked = window.find((p) =>
      p.tcp!.src === req.tcp!.src && p.time >= firstSent! && p.tcp!.ack >= end
    );
    out.push({ uri: req.httpUri!, done: acked?.time ?? firstSent });
  }
  return out;
}

/** The stages a capture shows, in boot order; stages that did not happen are left out. */
export function stagesFromPackets(packets: Packet[], ctx: StageContext): Stage[] {
  const at: Partial<Record<StageName, number>> = {};
  at["dhcp-discover"] = packets.find((p) => p.dhcp?.type === DHCP_DISCOVER)?.time;
  at["dhcp-offer"] = packets.find((p) => p.dhcp?.type === DHCP_OFFER)?.time;
  at["first-stage-tftp"] = firstStageDone(packets);
  at["ipxe-dhcp"] = ipxeDhcp(packets);
  // GRUB (shim's second stage) reads its config, kernel and initrd over TFTP, iPXE over HTTP.
  const tftp = tftpFetches(packets).filter((f) => f.data);
  const firstStage = tftp[0] ? basename(tftp[0].file) : undefined;
  at["second-stage-tftp"] = tftp.find((f) =>
    f.file.endsWith(".efi") && basename(f.file) !== firstStage
  )?.done;
  const http = httpFetches(packets);
  // UEFI HTTP boot fetches its loader (an EFI image) by URL before iPXE runs.
  const isLoader = (uri: string) => basename(uri).endsWith(".efi");
  at["first-stage-http"] = http.find((f) => isLoader(f.uri))?.done;
  const fetches = [
    ...http.filter((f) => !isLoader(f.uri)),
    ...tftp.map((f) => ({ uri: f.file, done: f.done, grub: basename(f.file) === "grub.cfg" })),
  ].sort((a, b) => a.done - b.done);
  at["kernel"] = fetches.find((f) => basename(f.uri) === ctx.kernel)?.done;
  at["initrd"] = fetches.find((f) => basename(f.uri) === ctx.initrd)?.done;
  at["boot-script"] = fetches.find((f) =>
    "grub" in f ? f.grub : basename(f.uri) !== ctx.kernel && basename(f.uri) !== ctx.initrd
  )?.done;
  const stages: Stage[] = [];
  for (const name of STAGE_NAMES) {
    if (name === "marker") continue;
    const t = at[name];
    if (t !== undefined) stages.push({ name, ms: Math.round(t * 1000 - ctx.startedAt) });
  }
  if (ctx.markerAt !== undefined) {
    stages.push({ name: "marker", ms: Math.round(ctx.markerAt - ctx.startedAt) });
  }
  return stages;
}

/** A table of stages for people: name, description, time since VM start, time since previous. */
export function formatStages(stages: readonly Stage[]): string {
  const rows = [["stage", "what", "at", "+"]];
  let prev = 0;
  for (const s of stages) {
    rows.push([
      s.name,
      STAGE_DESCRIPTIONS[s.name],
      `${(s.ms / 1000).toFixed(2)} s`,
      `${((s.ms - prev) / 1000).toFixed(2)} s`,
    ]);
    prev = s.ms;
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ")
  ).join("\n");
}
