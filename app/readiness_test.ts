import assert from "node:assert/strict";
import { MemoryStore } from "../content/memory.ts";
import { ContentError, type ContentStore } from "../content/store.ts";
import { Readiness } from "./readiness.ts";

/** A store whose listing does what `list` says. */
function storeThat(list: () => Promise<string[]>): ContentStore {
  return {
    description: "ipfs bafytest",
    stat: () => Promise.resolve(null),
    list,
    read: () => Promise.reject(new Error("unused")),
  };
}

Deno.test("readiness: every part that was expected, and whether the tree can be read", async (t) => {
  await t.step("parts start not ready and become ready", async () => {
    const r = new Readiness(new MemoryStore({ "boot/x/os.toml": "" }));
    r.expect("dhcp");
    r.expect("http");
    r.set("http", true, "listening on 10.0.0.1:80");
    assert.deepEqual(await r.report(), {
      dhcp: { ok: false, detail: "starting" },
      http: { ok: true, detail: "listening on 10.0.0.1:80" },
      content: { ok: true, detail: "memory" },
    });
  });
  const cases: [string, ContentStore, RegExp][] = [
    ["an empty tree", new MemoryStore({}), /the tree is empty or missing/],
    [
      "gateways unreachable",
      storeThat(() =>
        Promise.reject(new ContentError("no gateway answered for bafytest", "unavailable"))
      ),
      /^ipfs bafytest: no gateway answered for bafytest$/,
    ],
    ["no answer", storeThat(() => new Promise(() => {})), /^ipfs bafytest: no answer in 50 ms$/],
  ];
  for (const [name, store, detail] of cases) {
    await t.step(`${name}: not ready, and why`, async () => {
      const { content } = await new Readiness(store, { timeoutMs: 50 }).report();
      assert.equal(content!.ok, false);
      assert.match(content!.detail, detail);
    });
  }
  await t.step("the tree is asked at most every 5 s", async () => {
    let asked = 0;
    let now = 0;
    const r = new Readiness(storeThat(() => Promise.resolve([String(++asked)])), {
      now: () => now,
    });
    await r.report();
    now += 4000;
    await r.report();
    assert.equal(asked, 1);
    now += 2000;
    await r.report();
    assert.equal(asked, 2);
  });
});
