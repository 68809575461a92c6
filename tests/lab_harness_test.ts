/**
 * The lab harness itself, proven with stand-ins rather than Astral Boot: dnsmasq + python's
 * http.server (a peer), a server that never answers, one that dies at once, and SIGINT.
 * These are not the product test (that is tests/lab_test.ts); they show the harness boots,
 * times out, fails fast and cleans up whatever the server does.
 */
import assert from "node:assert/strict";
import { buildFixture, MARKER } from "../lab/fixture.ts";
import { runLab } from "../lab/lab.ts";
import { dnsmasqServer, type LabServer, spawnAll } from "../lab/servers.ts";
import { formatStages, STAGE_NAMES } from "../lab/stages.ts";
import { run } from "./netns.ts";
import { silentLogger } from "../log.ts";

const fixture = await buildFixture({ logger: silentLogger });

/** Asserts the namespace, its scratch folder and every process of the run are gone. */
async function assertNothingLeft(namespace: string): Promise<void> {
  assert.match(namespace, /^abl-/);
  const list = await run(["ip", "netns", "list"]);
  assert.ok(!list.stdout.split("\n").some((l) => l.split(" ")[0] === namespace), list.stdout);
  // QEMU carries the namespace name (-name); servers carry the scratch folder in their args.
  const procs = await run(["pgrep", "-fa", namespace], { check: false });
  assert.equal(procs.stdout.trim(), "");
}

/** A server that binds DHCP and HTTP but never answers a client. */
const silentServer: LabServer = {
  name: "silent",
  httpPort: 8080,
  start(ctx) {
    return Promise.resolve(spawnAll(ctx.ns, [
      {
        tag: "udp67",
        argv: [
          "python3",
          "-c",
          "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
          "s.bind(('0.0.0.0',67))\ntime.sleep(600)",
        ],
      },
      { tag: "http", argv: ["python3", "-m", "http.server", "8080", "--bind", ctx.serverIp] },
    ]));
  },
};

Deno.test("lab harness (dnsmasq stand-in): UEFI virtio boots through every stage", async () => {
  const result = await runLab({
    firmware: "uefi",
    nic: "virtio-net-pci",
    tree: fixture.tree,
    server: dnsmasqServer(),
    timeoutMs: 150_000,
    logger: silentLogger,
  });
  console.log(`dnsmasq, uefi + virtio-net-pci:\n${formatStages(result.stages)}`);
  assert.ok(result.ok, `${result.error}\n${result.serial.slice(-2000)}`);
  assert.ok(result.serial.includes(MARKER));
  // OVMF's PXE → TFTP snponly.efi → iPXE DHCP → HTTP: every stage shows, in boot order.
  // No GRUB in this chain, so no second stage over TFTP; no UEFI HTTP boot, so no first stage
  // over HTTP.
  assert.deepEqual(
    result.stages.map((s) => s.name),
    STAGE_NAMES.filter((s) => s !== "second-stage-tftp" && s !== "first-stage-http"),
  );
  const ms = result.stages.map((s) => s.ms);
  assert.deepEqual(ms, [...ms].sort((a, b) => a - b));
  assert.ok(ms[0]! > 0);
  await assertNothingLeft(result.namespace);
});

Deno.test("lab harness: a server that never answers times out and leaves nothing behind", async () => {
  const started = Date.now();
  const result = await runLab({
    firmware: "bios",
    nic: "e1000",
    tree: fixture.tree,
    server: silentServer,
    timeoutMs: 20_000,
    logger: silentLogger,
  });
  assert.equal(result.ok, false);
  assert.match(result.error ?? "", new RegExp(`no ${MARKER} on serial within 20 s`));
  // iPXE asked (its ROM ran and the capture saw the DISCOVER) but nobody answered.
  assert.match(result.serial, /iPXE/);
  assert.deepEqual(result.stages.map((s) => s.name), ["dhcp-discover"]);
  assert.ok(Date.now() - started < 60_000);
  await assertNothingLeft(result.namespace);
});

Deno.test("lab harness: a server that exits at once fails fast, before any VM", async () => {
  const dying: LabServer = {
    name: "dying",
    httpPort: 8080,
    start: (ctx) =>
      Promise.resolve(spawnAll(ctx.ns, [{ tag: "x", argv: ["sh", "-c", "echo broken; exit 3"] }])),
  };
  const result = await runLab({
    firmware: "bios",
    nic: "virtio-net-pci",
    tree: fixture.tree,
    server: dying,
    timeoutMs: 20_000,
    logger: silentLogger,
  });
  assert.equal(result.ok, false);
  assert.match(result.error ?? "", /boot server exited before it listened/);
  assert.deepEqual(result.serverLog, ["broken"]);
  assert.equal(result.serial, "");
  await assertNothingLeft(result.namespace);
});

Deno.test("lab harness: SIGINT stops a running boot and removes everything", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "-A",
      new URL("./fixtures/lab_run.ts", import.meta.url).pathname,
      JSON.stringify({ firmware: "bios", nic: "virtio-net-pci", timeoutMs: 120_000 }),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  // Wait (bounded) for the VM to start, then interrupt.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const deadline = Date.now() + 90_000;
  while (!log.includes("starting VM") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    log += value;
  }
  assert.ok(log.includes("starting VM"), log.slice(-2000));
  await new Promise((r) => setTimeout(r, 3000));
  child.kill("SIGINT");
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const status = await child.status;
  await drain;
  const result = JSON.parse((await stdout).trim());
  assert.equal(status.code, 1);
  assert.equal(result.ok, false);
  assert.equal(result.error, "interrupted");
  await assertNothingLeft(result.namespace);
});
