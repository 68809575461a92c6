/**
 * The knobs an operator expects, on `main.ts serve` in namespaces: an `ASTRALBOOT_*` variable
 * moves the HTTP port, `/healthz` and `/readyz` answer while serving, and `/readyz` says 503 and
 * why when the boot tree's IPFS gateway cannot be reached. Nothing here touches the host's
 * interfaces.
 */
import assert from "node:assert/strict";
import { bridgeLab, serveConfig, startServe } from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";

const SERVER_IP = "10.85.0.1";

/** Status and JSON body of a curl from `ns`; status 0 when nothing answered. */
async function getJson(ns: Netns, url: string): Promise<{ status: number; body: unknown }> {
  const r = await ns.exec(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url], {
    check: false,
    timeoutMs: 20_000,
  });
  const nl = r.stdout.lastIndexOf("\n");
  const text = r.stdout.slice(0, nl);
  return { status: Number(r.stdout.slice(nl + 1)), body: text ? JSON.parse(text) : null };
}

Deno.test({
  name: "main.ts serve: ASTRALBOOT_HTTP_PORT, /healthz, /readyz and its reasons",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abh", `${SERVER_IP}/24`, 1);
    const client = lab.clients[0]!;
    await client.exec(["ip", "addr", "add", "10.85.0.2/24", "dev", "eth0"]);
    const dir = await Deno.makeTempDir({ prefix: "abh-health-" });
    try {
      await Deno.mkdir(`${dir}/tree/boot/tiny`, { recursive: true });
      await Deno.writeTextFile(`${dir}/tree/boot/tiny/os.toml`, 'title = "tiny"\n');
      await t.step("ASTRALBOOT_HTTP_PORT=8081 wins over the file's 8080", async () => {
        await Deno.writeTextFile(
          `${dir}/config.toml`,
          serveConfig(dir, `range = ["10.85.0.100", "10.85.0.120"]`),
        );
        const serve = await startServe(lab.server, dir, { env: { ASTRALBOOT_HTTP_PORT: "8081" } });
        try {
          assert.ok(serve.lines.some((l) => /port = 8081 .*\[\$ASTRALBOOT_HTTP_PORT\]/.test(l)));
          const health = await getJson(client, `http://${SERVER_IP}:8081/healthz`);
          assert.equal(health.status, 200);
          assert.equal((health.body as { status: string }).status, "ok");
          assert.equal((await getJson(client, `http://${SERVER_IP}:8080/healthz`)).status, 0);
          const ready = await getJson(client, `http://${SERVER_IP}:8081/readyz`);
          assert.equal(ready.status, 200, JSON.stringify(ready.body));
          const checks = (ready.body as { checks: Record<string, { ok: boolean }> }).checks;
          assert.deepEqual(Object.keys(checks).sort(), ["content", "dhcp", "http", "tftp"]);
        } finally {
          await serve.stop();
        }
      });
      await t.step("an unreachable IPFS gateway: /readyz 503 naming the tree and why", async () => {
        // A ref with nothing cached, and a gateway address where nothing listens.
        await Deno.writeTextFile(
          `${dir}/config.toml`,
          serveConfig(dir, `range = ["10.85.0.100", "10.85.0.120"]`).replace(
            'interface = "br0"',
            'interface = "br0"\nref = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"',
          ) + '\n[ipfs]\ngateways = ["http://10.85.0.99:8080"]\ntimeout = "1s"\n',
        );
        const serve = await startServe(lab.server, dir, { local: false });
        try {
          const health = await getJson(client, `http://${SERVER_IP}:8080/healthz`);
          assert.equal(health.status, 200);
          const ready = await getJson(client, `http://${SERVER_IP}:8080/readyz`);
          assert.equal(ready.status, 503, JSON.stringify(ready.body));
          const body = ready.body as {
            ready: boolean;
            checks: Record<string, { ok: boolean; detail: string }>;
          };
          assert.equal(body.ready, false);
          assert.equal(body.checks.content!.ok, false);
          assert.match(
            body.checks.content!.detail,
            /bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/,
          );
          assert.ok(body.checks.dhcp!.ok && body.checks.tftp!.ok && body.checks.http!.ok);
        } finally {
          await serve.stop();
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
