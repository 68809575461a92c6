import assert from "node:assert/strict";
import { createLogger, type LogFormat, memoryLogger, preparedLine } from "./log.ts";

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

Deno.test("a prepared line is the text the level's method writes for the same fields", async (t) => {
  const values: (string | number | null)[][] = [
    ["GET", "/image/debian/linux", 200, 1024, 0.1, "10.0.0.2"],
    ['say "hi"', "back\\slash\ttab\nline", -0, 1e21, NaN, "žluť \u2028 \ud800"],
    ["", " spaced out ", Infinity, -1.5, 0, "a=b c"],
    [null, "null", null, 0, null, ""],
  ];
  // The message of each line: the prepared one, or one given with the line.
  const messages = [undefined, 'DHCPACK 10.0.0.5 to "52:54"', undefined, "žluť\nline \ud800"];
  const cases: [string, string[]][] = [
    ["plain keys", ["method", "path", "status", "bytes", "ms", "client"]],
    ["keys to escape", ['we"ird', "with space", "x", "y", "z", "ü"]],
    // Like the line's own keys or array indices, or twice: the object's rules, the general path.
    ["a line key", ["msg", "path", "status", "bytes", "time", "client"]],
    ["an index", ["method", "0", "status", "10", "ms", "client"]],
    ["twice", ["method", "path", "method", "bytes", "ms", "path"]],
  ];
  for (const format of ["json", "text", "journal"] as const) {
    for (const [what, keys] of cases) {
      await t.step(`${format}: ${what}`, () => {
        const prepared: string[] = [];
        const general: string[] = [];
        const a = createLogger({ format, write: (l) => prepared.push(l) });
        const b = createLogger({ format, write: (l) => general.push(l) });
        // Keys that write as they do in an object are written by the prepared writer itself,
        // never through the level's method (the others fall back to it).
        let generalCalls = 0;
        const warn = a.warn;
        a.warn = (...args) => (generalCalls++, warn(...args));
        const write = preparedLine(a, "warn", 'sub"sys', "a message\nin two", keys);
        values.forEach((v, n) => {
          write(v, messages[n]);
          const fields: Record<string, unknown> = {};
          keys.forEach((k, i) => fields[k] = v[i]);
          b.warn('sub"sys', messages[n] ?? "a message\nin two", fields);
        });
        // The time (of json and text lines) is the only thing allowed to differ.
        const untimed = (l: string) =>
          l.replace(/"time":"[^"]*"/, '"time":""').replace(/^\d\d:\d\d:\d\d\.\d{3}/, "");
        assert.deepEqual(prepared.map(untimed), general.map(untimed));
        assert.equal(prepared.length, values.length);
        // A key named like a JSON line's own only matters to JSON.
        const fast = what === "plain keys" || what === "keys to escape" ||
          (what === "a line key" && format !== "json");
        assert.equal(generalCalls, fast ? 0 : values.length);
      });
    }
  }
  await t.step("below the logger's level: nothing", () => {
    const out: string[] = [];
    const log = createLogger({ format: "json", level: "warn", write: (l) => out.push(l) });
    preparedLine(log, "info", "http", "request", ["a"])(["x"]);
    preparedLine(log, "error", "http", "failed", ["a"])(["x"]);
    assert.equal(out.length, 1);
    assert.equal(JSON.parse(out[0]!).level, "error");
  });
  await t.step("json: a value left undefined is left out, as the general path leaves it", () => {
    const out: string[] = [];
    const log = createLogger({ format: "json", write: (l) => out.push(l) });
    preparedLine(log, "info", "http", "request", ["a", "b"])(
      ["x", undefined] as unknown as string[],
    );
    log.info("http", "request", { a: "x", b: undefined });
    assert.equal(out[0]!.replace(/"time":"[^"]*"/, ""), out[1]!.replace(/"time":"[^"]*"/, ""));
    assert.ok(!out[0]!.includes('"b"'));
  });
  await t.step("a logger without prepare gets the fields through its level's method", () => {
    const log = memoryLogger();
    const write = preparedLine(log, "debug", "tftp", "sent", ["block", "to"]);
    write([7, "10.0.0.2"]);
    write([8, null], "sent again");
    assert.deepEqual(log.lines, [
      { level: "debug", subsystem: "tftp", message: "sent", fields: { block: 7, to: "10.0.0.2" } },
      { level: "debug", subsystem: "tftp", message: "sent again", fields: { block: 8, to: null } },
    ]);
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
