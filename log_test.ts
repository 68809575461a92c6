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
