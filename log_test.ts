import assert from "node:assert/strict";
import { createLogger, type LogFormat } from "./log.ts";

function lines(format: LogFormat, level: "debug" | "info" = "info") {
  const out: string[] = [];
  const log = createLogger({ format, level, write: (l) => out.push(l) });
  log.debug("dhcp", "hidden below info");
  log.info("dhcp", "DHCPACK 10.0.0.5 to 52:54:00:00:00:01", { xid: "0x1", hostname: "a b" });
  log.warn("tftp", "request refused\nsecond line", { error: new Error("boom") });
  log.error("main", "stopping");
  return out;
}

Deno.test("log formats: json lines, a readable line, journald's priority prefixes", async (t) => {
  await t.step("json: one object per line, errors as their message", () => {
    const out = lines("json").map((l) => JSON.parse(l));
    assert.deepEqual(out.map((o) => [o.level, o.subsystem, o.msg]), [
      ["info", "dhcp", "DHCPACK 10.0.0.5 to 52:54:00:00:00:01"],
      ["warn", "tftp", "request refused\nsecond line"],
      ["error", "main", "stopping"],
    ]);
    assert.equal(out[1].error, "boom");
    assert.match(out[0].time, /^\d{4}-\d\d-\d\dT/);
  });
  await t.step("journal: <priority>, no time (journald adds it), one line per entry", () => {
    assert.deepEqual(lines("journal"), [
      '<6>[dhcp] DHCPACK 10.0.0.5 to 52:54:00:00:00:01 xid=0x1 hostname="a b"',
      '<4>[tftp] request refused second line error="boom"',
      "<3>[main] stopping",
    ]);
    assert.equal(lines("journal", "debug")[0], "<7>[dhcp] hidden below info");
  });
  await t.step("text: time and level for a person at a terminal", () => {
    const out = lines("text");
    assert.match(out[0]!, /^\d\d:\d\d:\d\d\.\d{3} \[dhcp\] DHCPACK /);
    assert.match(out[1]!, /^\d\d:\d\d:\d\d\.\d{3} WARN \[tftp\] request refused second line/);
  });
});

Deno.test("stdout: lines gathered a few ms, in order, written before a warning and at exit", async (t) => {
  const run = async (code: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { createLogger } from ${JSON.stringify(import.meta.resolve("./log.ts"))};
        const log = createLogger({ format: "journal", level: "info" }); ${code}`,
      ],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
  };
  await t.step("lines gathered together come in order, a warning after them", async () => {
    assert.deepEqual(
      await run(`log.info("a", "one"); log.info("a", "two"); log.warn("a", "three");`),
      ["<6>[a] one", "<6>[a] two", "<4>[a] three"],
    );
  });
  await t.step("a line gathered when the program exits is written", async () => {
    assert.deepEqual(
      await run(`setTimeout(() => { log.info("a", "late"); Deno.exit(0); }, 5);`),
      ["<6>[a] late"],
    );
  });
  await t.step("lines of a turn are written when the turn ends, not at exit only", async () => {
    const lines = await run(`log.info("a", "first");
      setTimeout(() => { log.info("a", "later"); Deno.exit(0); }, 50);
      setTimeout(() => Deno.stdout.writeSync(new TextEncoder().encode("marker\\n")), 20);`);
    assert.deepEqual(lines, ["<6>[a] first", "marker", "<6>[a] later"]);
  });
});
