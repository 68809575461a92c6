import assert from "node:assert/strict";
import { checkLayers, checkRepository, layerOf, packageOf } from "./layers.ts";

Deno.test("the repository keeps its layers", async () => {
  assert.deepEqual(await checkRepository(new URL("..", import.meta.url).pathname), []);
});

Deno.test("a wrong import, a socket in policy, a private file and dead code are each named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "astral-layers-" });
  try {
    const files: Record<string, string> = {
      "main.ts": 'import "./app/run.ts";\n',
      "app/run.ts":
        'import "../protocols/dhcp/server.ts";\nimport "../boot/policy.ts";\nimport "../boot/show.ts";\n',
      // The mistake the layout exists to prevent: a protocol reaching up into policy.
      "protocols/dhcp/server.ts": 'import { decide } from "../../boot/policy.ts";\ndecide();\n',
      "boot/policy.ts": 'import "../net/udp_socket.ts";\nexport function decide() {}\n',
      "net/udp_socket.ts": "export const socket = 1;\n",
      "state/orphan.ts": "export const nobody = 1;\n",
      // A private file of protocols/dhcp/, used by a layer that may see protocols/ at all.
      "protocols/dhcp/_dump.ts": "export const dump = 1;\n",
      "boot/show.ts": 'import "../protocols/dhcp/_dump.ts";\n',
      "state/orphan_test.ts": 'import "../http/anything.ts";\n',
    };
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/") + 1)}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${path}`, text);
    }
    assert.deepEqual(await checkRepository(dir), [
      "boot/policy.ts imports net/udp_socket.ts: sockets are for net, protocols, app, not boot",
      "boot/show.ts imports protocols/dhcp/_dump.ts: protocols/dhcp/_dump.ts is private to protocols/dhcp/ (and its tests)",
      "protocols/dhcp/server.ts imports boot/policy.ts: protocols may import only net, log.ts",
      "state/orphan.ts is not reachable from main.ts: dead code, or a layer missing its import",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("packages stay in their layer", () => {
  const root = "file:///r/";
  const graph = {
    modules: [
      {
        specifier: `${root}boot/x.ts`,
        dependencies: [{ specifier: "hono", code: { specifier: "npm:hono@^4" } }],
      },
      {
        specifier: `${root}http/y.ts`,
        dependencies: [{ specifier: "hono", code: { specifier: "npm:hono@^4" } }],
      },
      {
        specifier: `${root}protocols/z.ts`,
        dependencies: [{ specifier: "node:sqlite", type: { specifier: "node:sqlite" } }],
      },
      {
        specifier: `${root}boot/x_test.ts`,
        dependencies: [{ specifier: "node:sqlite", code: { specifier: "node:sqlite" } }],
      },
    ],
  };
  assert.deepEqual(checkLayers(graph, root), [
    { from: "boot/x.ts", to: "npm:hono", why: "npm:hono is for http only" },
    { from: "protocols/z.ts", to: "node:sqlite", why: "node:sqlite is for state, app only" },
  ]);
});

Deno.test("helpers", () => {
  assert.equal(layerOf("protocols/dhcp/server.ts"), "protocols");
  assert.equal(layerOf("main.ts"), "main.ts");
  assert.equal(packageOf("npm:@ipld/car@^5/buffer-writer"), "npm:@ipld/car");
  assert.equal(packageOf("npm:/hono@4.6.1/http-exception"), "npm:hono");
  assert.equal(packageOf("node:sqlite"), "node:sqlite");
  assert.equal(packageOf("file:///x.ts"), null);
});
