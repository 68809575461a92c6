/**
 * What a reload (`SIGHUP`, `systemctl reload`) may change while the servers keep running: the
 * machines, the DHCP answers (router, DNS servers, domain, lease time, options, known_only, the
 * new-client rate), the boot defaults, the boot tree (`ref`, the IPFS settings), the DNS
 * upstreams and TTL, the public URL. Sockets, ports, the interface, the data directory and the
 * token file stay as they were started: a change to one of them is reported as needing a restart
 * and the running value is kept.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** Keys (`section.key`) a reload applies; every other key needs a restart. */
export const LIVE_KEYS: ReadonlySet<string> = new Set([
  "ref",
  "log_level",
  "dhcp.range",
  "dhcp.lease",
  "dhcp.router",
  "dhcp.dns",
  "dhcp.domain",
  "dhcp.efi_loader",
  "dhcp.arm64_loader",
  "dhcp.known_only",
  "dhcp.new_client_rate",
  "dhcp.options",
  "dhcp.force_options",
  "dhcp.subnets",
  "dns.upstream",
  "dns.ttl",
  "http.public_url",
  "ipfs.gateways",
  "ipfs.timeout",
  "ipfs.cache_max",
  "ipfs.min_rate",
  "boot.default",
  "boot.menu_timeout",
]);

// Not settings: where values came from, and the machines (always live).
const NOT_COMPARED = new Set(["sources", "origins", "machines"]);

/** The config as `section.key` → value, one level deep (sections are one level). */
function flatten(c: Config): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(c)) {
    if (NOT_COMPARED.has(k)) continue;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) out.set(`${k}.${k2}`, v2);
    } else out.set(k, v);
  }
  return out;
}

/** What a reload from `running` to `next` does: what it applies, what waits for a restart. */
export interface ReloadPlan {
  /** `next`, with the running value kept for every key that needs a restart. */
  config: Config;
  /** Keys that changed and are applied. */
  applied: string[];
  /** Keys that changed but need a restart; their running value is kept. */
  restart: string[];
}

/** Compares `running` and `next` key by key; see {@linkcode ReloadPlan}. */
export function planReload(running: Config, next: Config): ReloadPlan {
  const before = flatten(running);
  const after = flatten(next);
  const config = structuredClone(next);
  const applied: string[] = [], restart: string[] = [];
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    if (JSON.stringify(before.get(key)) === JSON.stringify(after.get(key))) continue;
    if (LIVE_KEYS.has(key)) {
      applied.push(key);
      continue;
    }
    restart.push(key);
    const [section, name] = key.includes(".") ? key.split(".") as [string, string] : ["", key];
    const target = (section
      ? (config as unknown as Record<string, Record<string, unknown>>)[section]
      : config as unknown as Record<string, unknown>)!;
    const value = section
      ? (running as unknown as Record<string, Record<string, unknown>>)[section]![name]
      : (running as unknown as Record<string, unknown>)[name];
    if (value === undefined) {
      delete target[name];
    } else target[name] = structuredClone(value);
  }
  // The public URL derives from the port unless it is set: a port kept for now keeps it too.
  if (restart.some((k) => k.startsWith("http.")) && !next.sources["http.public_url"]) {
    config.http.public_url = running.http.public_url;
    const i = applied.indexOf("http.public_url");
    if (i >= 0) applied.splice(i, 1);
  }
  if (JSON.stringify(running.machines) !== JSON.stringify(next.machines)) applied.push("machine");
  return { config, applied: applied.sort(), restart: restart.sort() };
}
