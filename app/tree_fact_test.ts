import assert from "node:assert/strict";
import { MemoryStore } from "../content/memory.ts";
import { TreeFact } from "./tree_fact.ts";

/** A lookup whose answers the test gives, one per call, when it wants. */
function manual() {
  const pending: ((v: string) => void)[] = [];
  const lookup = () => new Promise<string>((resolve) => pending.push(resolve));
  return { lookup, answer: (i: number, v: string) => pending[i]!(v) };
}

Deno.test("TreeFact: the answer about the tree served, never the one before", async (t) => {
  const a = new MemoryStore({});
  const b = new MemoryStore({});
  await t.step("unknown until the lookup answers", async () => {
    const m = manual();
    const fact = new TreeFact(m.lookup);
    const checked = fact.check(a);
    assert.equal(fact.value, undefined);
    m.answer(0, "a: yes");
    assert.equal(await checked, "a: yes");
    assert.equal(fact.value, "a: yes");
  });
  await t.step("a new tree forgets the old answer at once", async () => {
    const m = manual();
    const fact = new TreeFact(m.lookup);
    const first = fact.check(a);
    m.answer(0, "a: yes");
    await first;
    const second = fact.check(b);
    assert.equal(fact.value, undefined);
    m.answer(1, "b: no");
    await second;
    assert.equal(fact.value, "b: no");
  });
  await t.step("a late answer about a replaced tree is not taken", async () => {
    const m = manual();
    const fact = new TreeFact(m.lookup);
    const old = fact.check(a);
    const now = fact.check(b);
    m.answer(1, "b: no");
    await now;
    m.answer(0, "a: yes");
    assert.equal(await old, "a: yes");
    assert.equal(fact.value, "b: no");
  });
  await t.step("a failed lookup leaves it unknown", async () => {
    const fact = new TreeFact(() => Promise.reject(new Error("gateway down")));
    await assert.rejects(fact.check(a), /gateway down/);
    assert.equal(fact.value, undefined);
  });
});
