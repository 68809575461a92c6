import assert from "node:assert/strict";
import { type HeapSnapshot, ownedBytes, smapsParts, sourceBytes } from "./dhcp_memory.ts";

const NODE_TYPES = ["hidden", "array", "string", "object", "code", "closure", "object shape"];
const EDGE_TYPES = ["context", "element", "property", "internal", "hidden", "shortcut", "weak"];

/** A snapshot of `nodes` ([type, name, size, edges: [type, name, to][]]) in V8's layout. */
function snapshot(nodes: [string, string, number, [string, string, number][]][]): HeapSnapshot {
  const strings: string[] = [];
  const str = (s: string) => (strings.indexOf(s) + 1 || strings.push(s)) - 1;
  const flatNodes: number[] = [], flatEdges: number[] = [];
  nodes.forEach(([type, name, size, edges], id) => {
    flatNodes.push(NODE_TYPES.indexOf(type), str(name), id, size, edges.length);
    for (const [kind, label, to] of edges) {
      flatEdges.push(EDGE_TYPES.indexOf(kind), str(label), to * 5);
    }
  });
  return {
    snapshot: {
      meta: {
        node_fields: ["type", "name", "id", "self_size", "edge_count"],
        node_types: [NODE_TYPES],
        edge_fields: ["type", "name_or_index", "to_node"],
        edge_types: [EDGE_TYPES],
      },
    },
    nodes: flatNodes,
    edges: flatEdges,
    strings,
  };
}

Deno.test("dhcp_memory: what each owner holds, and the modules' source text by origin", () => {
  const snap = snapshot([
    ["object", "LeaseTable", 100, [["property", "rows", 1], ["property", "registry", 3], [
      "weak",
      "w",
      5,
    ]]],
    ["object", "Map", 50, [["internal", "table", 2], ["internal", "map", 4]]],
    ["array", "", 200, []],
    ["object", "MachineRegistry", 30, [["property", "shared", 2]]],
    ["object shape", "system / Map", 1000, []],
    ["string", "only weakly held", 64, []],
    ["code", "system / Script / file:///srv/app/state/leases.ts", 10, [["internal", "source", 7]]],
    ["string", "ours", 400, []],
    ["code", "system / Script / file:///root/.cache/deno/npm/registry.npmjs.org/hono/x.js", 10, [
      ["internal", "source", 9],
    ]],
    ["string", "npm", 300, []],
    ["code", "system / Script / ext:deno_web/06_streams.js", 10, [["internal", "source", 11]]],
    ["string", "deno", 500, []],
  ]);
  // The table, its Map and the array; not the hidden class, the registry or what is weakly held.
  // What two owners reach counts for each.
  assert.deepEqual(
    ownedBytes(snap, ["LeaseTable", "MachineRegistry", "EventLog"]),
    new Map([["LeaseTable", 350], ["MachineRegistry", 230], ["EventLog", 0]]),
  );
  assert.deepEqual(
    sourceBytes(snap),
    new Map([["our modules", 400], ["npm packages", 300], ["Deno's own", 500]]),
  );
});

Deno.test("dhcp_memory: resident memory by kind of mapping", () => {
  const smaps = [
    "7f0000000000-7f0000040000 rw-p 00000000 00:00 0 ",
    "Size:                256 kB",
    "Rss:                 256 kB",
    "7f0000040000-7f0000080000 rw-p 00000000 00:00 0 ",
    "Rss:                 128 kB",
    "55d000000000-55d000100000 rw-p 00000000 00:00 0                          [heap]",
    "Rss:                 512 kB",
    "7f1000000000-7f1000400000 r-xp 00000000 08:01 123   /usr/lib/node_modules/deno/deno",
    "Rss:                2048 kB",
    "7f2000000000-7f2000900000 rw-p 00000000 00:00 0 ",
    "Rss:                 100 kB",
    "7f3000000000-7f3000001000 r--p 00000000 08:01 9     /usr/lib/x86_64-linux-gnu/libc.so.6",
    "Rss:                   4 kB",
  ].join("\n");
  assert.deepEqual(
    smapsParts(smaps),
    new Map([
      ["V8 heap pages (256 KiB)", 384],
      ["C heap", 512],
      ["deno executable", 2048],
      ["other anonymous", 100],
      ["other", 4],
    ]),
  );
});
