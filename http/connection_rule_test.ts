import assert from "node:assert/strict";
import { connectionsToCut, type ConnectionView } from "./connection_rule.ts";

/** A connection: id, client, busy (1) or not (0), idle since (ms). */
function c(id: number, client: string, busy: 0 | 1, idleSince: number): ConnectionView {
  return { id, client, busy: busy === 1, idleSince };
}

const LIMITS = { idleTimeoutMs: 1000, maxConnections: 4, maxPerClient: 2 };

Deno.test("connectionsToCut", async (t) => {
  const cases: {
    name: string;
    conns: ConnectionView[];
    now: number;
    limits?: Partial<typeof LIMITS>;
    want: string[];
  }[] = [
    { name: "nothing open", conns: [], now: 5000, want: [] },
    {
      name: "idle past the timeout is cut, at or under it is kept",
      conns: [c(1, "a", 0, 3000), c(2, "b", 0, 4000), c(3, "c", 0, 4500)],
      now: 5000,
      want: ["1 idle"],
    },
    {
      name: "a busy one is never cut, however long",
      conns: [c(1, "a", 1, 0), c(2, "b", 1, -1e9)],
      now: 5000,
      want: [],
    },
    {
      name: "per client: its idle ones, longest idle first, down to the cap",
      conns: [c(1, "a", 0, 4900), c(2, "a", 0, 4500), c(3, "a", 0, 4800), c(4, "b", 0, 4000)],
      now: 5000,
      want: ["2 max_per_client"],
    },
    {
      name: "per client: busy ones count but stay; the cap can stay exceeded",
      conns: [c(1, "a", 1, 0), c(2, "a", 1, 0), c(3, "a", 0, 4900), c(4, "a", 1, 0)],
      now: 5000,
      want: ["3 max_per_client"],
    },
    {
      name: "in all: idle ones of anyone, longest idle first, down to the cap",
      conns: [
        c(1, "a", 0, 4900),
        c(2, "b", 0, 4100),
        c(3, "c", 1, 0),
        c(4, "d", 0, 4700),
        c(5, "e", 0, 4300),
        c(6, "f", 0, 4950),
      ],
      now: 5000,
      want: ["2 max_connections", "5 max_connections"],
    },
    {
      name: "equal idle times: the lower id first",
      conns: [c(9, "a", 0, 4500), c(3, "b", 0, 4500), c(5, "c", 0, 4500)],
      now: 5000,
      limits: { maxConnections: 1 },
      want: ["3 max_connections", "5 max_connections"],
    },
    {
      name: "idle cuts count before the caps; per-client cuts before the total",
      conns: [
        c(1, "a", 0, 1000),
        c(2, "a", 0, 4800),
        c(3, "a", 0, 4700),
        c(4, "a", 0, 4600),
        c(5, "b", 0, 4900),
        c(6, "c", 0, 4950),
        c(7, "d", 0, 4990),
      ],
      now: 5000,
      want: ["1 idle", "4 max_per_client", "3 max_connections"],
    },
    {
      name: "everything busy: over both caps, nothing cut",
      conns: [1, 2, 3, 4, 5, 6].map((id) => c(id, "a", 1, 0)),
      now: 5000,
      want: [],
    },
  ];
  for (const k of cases) {
    await t.step(k.name, () => {
      const got = connectionsToCut(k.conns, k.now, { ...LIMITS, ...k.limits });
      assert.deepEqual(got.map((x) => `${x.id} ${x.reason}`), k.want);
    });
  }
});
