import assert from "node:assert/strict";
import { MemoryStore } from "../content/memory.ts";
import type { ContentStore } from "../content/store.ts";
import { missingSecureBootFiles } from "./secure_boot.ts";

Deno.test("missingSecureBootFiles names what the tree lacks", async (t) => {
  const failing: ContentStore = {
    description: "broken",
    stat: () => Promise.reject(new Error("gateway down")),
    list: () => Promise.resolve([]),
    read: () => Promise.reject(new Error("gateway down")),
  };
  const rows: [string, ContentStore, string[]][] = [
    ["both", new MemoryStore({ "tftp/shimx64.efi": "s", "tftp/grubx64.efi": "g" }), []],
    ["no GRUB", new MemoryStore({ "tftp/shimx64.efi": "s" }), ["tftp/grubx64.efi"]],
    ["nothing", new MemoryStore({}), ["tftp/shimx64.efi", "tftp/grubx64.efi"]],
    // A folder where the file should be is no file.
    ["a folder", new MemoryStore({ "tftp/shimx64.efi/x": "s", "tftp/grubx64.efi": "g" }), [
      "tftp/shimx64.efi",
    ]],
    ["a store that cannot say", failing, ["tftp/shimx64.efi", "tftp/grubx64.efi"]],
  ];
  for (const [name, store, want] of rows) {
    await t.step(name, async () => {
      const missing = await missingSecureBootFiles(store);
      assert.deepEqual(missing.map((f) => f.path), want);
      for (const f of missing) assert.match(f.source, /^(shim-signed|grub-efi-amd64-signed): \//);
    });
  }
});
