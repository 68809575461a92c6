/**
 * Environment overrides: every config key can be set as `ASTRALBOOT_<SECTION>_<KEY>`
 * (`ASTRALBOOT_HTTP_PORT=8081`, `ASTRALBOOT_DHCP_MODE=proxy`; top-level keys without a section:
 * `ASTRALBOOT_INTERFACE=eth1`). A value wins over config.toml. It is read as a TOML value when
 * it is one (`8081`, `true`, `["10.0.0.53", "10.0.0.54"]`, `"quoted"`), else as a string
 * (`eth1`, `24h`, `10.0.0.1`). `[[machine]]` entries have no overrides. A variable with the
 * prefix that names no key is an error: a typo must not pass silently.
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import { ConfigError, type Raw } from "./config_reader.ts";

/** The prefix of every override. */
export const ENV_PREFIX = "ASTRALBOOT_";

/** The variable that sets `key` of `section` ("" for a top-level key). */
export function envName(section: string, key: string): string {
  return `${ENV_PREFIX}${section ? `${section.toUpperCase()}_` : ""}${key.toUpperCase()}`;
}

/** An environment value as TOML would read it, else the string itself. */
export function envValue(text: string): unknown {
  try {
    return parseToml(`v = ${text}`).v;
  } catch {
    return text;
  }
}

/**
 * Writes the overrides in `env` into `raw`, for the keys `known` lists per section (tables and
 * `[[machine]]` excluded). Returns which variable set which key (`"http.port"` →
 * `"ASTRALBOOT_HTTP_PORT"`).
 */
export function applyEnv(
  raw: Raw,
  env: Record<string, string>,
  known: Record<string, readonly string[]>,
): Map<string, string> {
  const byName = new Map<string, [string, string]>();
  for (const [section, keys] of Object.entries(known)) {
    if (section === "machine") continue;
    for (const key of keys) {
      if (section === "" && known[key] !== undefined) continue; // a section, not a value
      byName.set(envName(section, key), [section, key]);
    }
  }
  const set = new Map<string, string>();
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX)) continue;
    const target = byName.get(name);
    if (!target) {
      throw new ConfigError(
        `${name}: no config key has this name; keys are ASTRALBOOT_<SECTION>_<KEY>, e.g. ` +
          `ASTRALBOOT_HTTP_PORT (astralboot config lists every key)`,
      );
    }
    const [section, key] = target;
    const table = section ? (raw[section] ??= {}) as Raw : raw;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new ConfigError(`${name}: [${section}] in the config file is not a table`);
    }
    table[key] = envValue(text);
    set.set(section ? `${section}.${key}` : key, name);
  }
  return set;
}
