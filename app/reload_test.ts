import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { planReload } from "./reload.ts";

const eth1 = (name: string) =>
  name === "eth1" ? { name, address: "10.0.0.1", netmask: "255.255.255.0" } : null;
const load = (extra: string) =>
  loadConfig(`interface = "eth1"\n${extra}\n`, { lookup: eth1, resolvConf: () => null });

Deno.test("a reload applies machines, answers and boot defaults; sockets wait for a restart", async (t) => {
  const running = load("[http]\nport = 8080\n[boot]\nmenu_timeout = 5");
  await t.step("the same config: nothing to do", () => {
    const plan = planReload(running, load("[http]\nport = 8080\n[boot]\nmenu_timeout = 5"));
    assert.deepEqual([plan.applied, plan.restart], [[], []]);
  });
  await t.step("a new machine, a router, a boot default: applied", () => {
    const next = load(
      '[dhcp]\nrouter = "10.0.0.254"\n[http]\nport = 8080\n[boot]\nmenu_timeout = 9\n' +
        '[[machine]]\nmac = "52:54:00:00:00:01"\nip = "10.0.0.50"',
    );
    const plan = planReload(running, next);
    assert.deepEqual(plan.applied, ["boot.menu_timeout", "dhcp.router", "machine"]);
    assert.deepEqual(plan.restart, []);
    assert.equal(plan.config.machines[0]!.ip, "10.0.0.50");
    assert.equal(plan.config.dhcp.router, "10.0.0.254");
  });
  await t.step("the IPFS download limits: applied (the store is opened anew)", () => {
    const next = load(
      '[http]\nport = 8080\n[boot]\nmenu_timeout = 5\n[ipfs]\nmin_rate = 0\ncache_max = "1GiB"',
    );
    const plan = planReload(running, next);
    assert.deepEqual([plan.applied, plan.restart], [["ipfs.cache_max", "ipfs.min_rate"], []]);
    assert.equal(plan.config.ipfs.min_rate, 0);
  });
  await t.step("a port or the data directory: reported, the running value kept", () => {
    const next = load('data_dir = "/srv/ab"\n[http]\nport = 8081\n[boot]\nmenu_timeout = 5');
    const plan = planReload(running, next);
    assert.deepEqual(plan.restart, ["api.token_file", "data_dir", "db_file", "http.port"]);
    assert.equal(plan.config.http.port, 8080);
    assert.equal(plan.config.data_dir, running.data_dir);
    assert.equal(plan.config.api.token_file, running.api.token_file);
    // The URL handed to clients follows the port that still runs.
    assert.equal(plan.config.http.public_url, "http://10.0.0.1:8080");
    assert.deepEqual(plan.applied, []);
  });
});
