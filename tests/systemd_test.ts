/**
 * The systemd unit of contrib/systemd: the directives that keep the server unprivileged are
 * there, and `systemd-analyze security` (offline: no running systemd needed) rates its
 * exposure low. tests/package_test.ts runs `systemd-analyze verify` on the installed unit and
 * tests/unprivileged_test.ts runs the server the way it says.
 */
import assert from "node:assert/strict";
import { repoRoot } from "../tools/build.ts";
import { run } from "./netns.ts";

const UNIT = `${repoRoot()}/contrib/systemd/astralboot.service`;
/** Highest exposure accepted; systemd calls up to 2.0 "OK" (lower is better, 10 is root). */
const MAX_EXPOSURE = 2.0;

/** The values of `key` in the [Service] section, in order. */
function directives(unit: string, key: string): string[] {
  const service = unit.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  return [...service.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]!.trim());
}

Deno.test("the systemd unit keeps the server unprivileged", async (t) => {
  const unit = await Deno.readTextFile(UNIT);
  const table: [string, string][] = [
    ["User", "astralboot"],
    ["AmbientCapabilities", "CAP_NET_BIND_SERVICE CAP_NET_RAW"],
    ["CapabilityBoundingSet", "CAP_NET_BIND_SERVICE CAP_NET_RAW"],
    ["StateDirectory", "astralboot"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["NoNewPrivileges", "yes"],
    ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"],
    ["SystemCallFilter", "@system-service"],
    ["SystemCallErrorNumber", "EPERM"],
    ["ExecReload", "/bin/kill -HUP $MAINPID"],
    ["Restart", "on-failure"],
    ["RestartPreventExitStatus", "2"],
  ];
  for (const [key, value] of table) {
    await t.step(`${key}=${value}`, () => assert.ok(directives(unit, key).includes(value)));
  }
  await t.step("no MemoryDenyWriteExecute: V8 writes machine code at run time", () => {
    assert.deepEqual(directives(unit, "MemoryDenyWriteExecute"), []);
  });
  await t.step("no ProcSubset=pid: it reads /proc/net/arp and /proc/sys/net", () => {
    assert.deepEqual(directives(unit, "ProcSubset"), []);
  });
  await t.step("the user is the one the package's sysusers.d file makes", async () => {
    const sysusers = await Deno.readTextFile(`${repoRoot()}/contrib/systemd/astralboot.sysusers`);
    assert.match(sysusers, /^u astralboot - .* \/var\/lib\/astralboot /m);
  });
});

Deno.test("systemd-analyze security rates the unit's exposure low", async () => {
  const r = await run(["systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT], {
    check: false,
  });
  const m = /Overall exposure level for astralboot\.service: (\d+\.\d+)/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  const exposure = Number(m[1]);
  console.log(`systemd-analyze security: exposure ${exposure} (0 best, 10 worst)`);
  assert.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} > ${MAX_EXPOSURE}:\n${r.stdout}`);
  // The documents print the score: they must print this one.
  const operating = await Deno.readTextFile(`${repoRoot()}/docs/OPERATING.md`);
  assert.match(operating, new RegExp(`rates this \\*\\*${exposure}\\*\\*`));
  const security = await Deno.readTextFile(`${repoRoot()}/SECURITY.md`);
  assert.match(security, new RegExp(`rates it\\s+${exposure}\\.?\\s`));
});
