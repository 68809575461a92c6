/**
 * The captured golden messages of `testdata/` (see its README), for the codec tests, the
 * policy tests and the fuzz runs.
 *
 * @module
 */

const TESTDATA = new URL("./testdata/", import.meta.url);

/** Every captured message by file name without `.bin` (`a_query`, `a_answer` …). */
export function dnsCaptures(): Map<string, Uint8Array> {
  return new Map(
    [...Deno.readDirSync(TESTDATA)]
      .filter((e) => e.name.endsWith(".bin"))
      .map((e) => e.name)
      .sort()
      .map((name) => [name.slice(0, -4), Deno.readFileSync(new URL(name, TESTDATA))]),
  );
}

/** The captured queries only, by name. */
export function dnsQueries(): Map<string, Uint8Array> {
  return new Map([...dnsCaptures()].filter(([name]) => name.endsWith("_query")));
}
