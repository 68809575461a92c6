/**
 * docs/OPERATING.md against the program: its metrics reference is what `observe/watch.ts`
 * registers (tests/metrics_doc.ts makes it), every metric the documents name exists, and the
 * troubleshooting covers the symptoms operators meet.
 */
import assert from "node:assert/strict";
import { generatedBlock, metricsTable, OPERATING, registeredMetrics } from "./metrics_doc.ts";

/** The cells of a Markdown table's body rows, padding removed (deno fmt pads the columns). */
function tableRows(block: string): string[][] {
  return block.split("\n")
    .filter((l) => l.startsWith("|") && !/^\|\s*-/.test(l))
    .slice(1)
    .map((l) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
}

const doc = await Deno.readTextFile(OPERATING);
const registered = registeredMetrics();

Deno.test("the metrics reference is what the watch registers", async (t) => {
  const block = generatedBlock(doc);
  assert.ok(block, "docs/OPERATING.md has its generated metrics block");
  await t.step("row for row (else: deno run -A tests/metrics_doc.ts --write)", () => {
    assert.deepEqual(tableRows(block), tableRows(metricsTable(registered)));
  });
  await t.step("every registered metric is in it", () => {
    const missing = registered.filter((m) => !block.includes(`\`${m.name}\``)).map((m) => m.name);
    assert.deepEqual(missing, []);
  });
});

Deno.test("every metric the documents name exists", async (t) => {
  const names = new Set(registered.map((m) => m.name));
  // A histogram is exported as _bucket, _sum and _count series too.
  const known = (n: string) => names.has(n) || names.has(n.replace(/_(bucket|sum|count)$/, ""));
  for (const file of ["docs/OPERATING.md", "README.md", "SECURITY.md"]) {
    await t.step(file, async () => {
      const text = await Deno.readTextFile(new URL(`../${file}`, import.meta.url));
      const named = [...new Set(text.match(/\bastralboot_[a-z_]+/g) ?? [])];
      assert.deepEqual(named.filter((n) => !known(n)), []);
    });
  }
});

Deno.test("the troubleshooting covers each symptom; the README links the page", async (t) => {
  const troubleshooting = doc.split("## Troubleshooting by symptom")[1]?.split("\n## ")[0] ?? "";
  for (
    const symptom of [
      "**No offer.**",
      "**TFTP timeout.**",
      "**Secure Boot refusal.**",
      "**Chainload loop.**",
      '**403 "… does not ask from …".**',
      "**401 from the API or the dashboard.**",
    ]
  ) {
    await t.step(symptom, () => assert.ok(troubleshooting.includes(symptom)));
  }
  await t.step("README links docs/OPERATING.md", async () => {
    const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
    assert.match(readme, /\]\(docs\/OPERATING\.md\)/);
  });
});
