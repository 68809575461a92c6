/**
 * DHCP options in config.toml: the `options` tables (`[dhcp.options]`, a subnet's, a
 * machine's) by name or number, and the `force_options` lists, checked against the option
 * table of `protocols/dhcp/option_table.ts` with one error per mistake; and what the DHCP
 * policy gets of them (code → bytes).
 *
 * @module
 */
import {
  encodeOption,
  encodeOptions,
  optionSpec,
  type OptionValue,
  OptionValueError,
} from "../protocols/dhcp/option_table.ts";
import type { ConfiguredOptions } from "../boot/dhcp_options.ts";
import type { ConfigReader, Raw, TableIndex } from "./config_reader.ts";

/** One options table as configured: option name (or number when unnamed) → value. */
export type DhcpOptionValues = Record<string, OptionValue>;

/** Where a table is: its section (`dhcp`, `dhcp.subnet`, `machine`) and array element. */
export interface OptionsPlace {
  section: string;
  at?: TableIndex;
}

/** The `options` table of `t`: checked, each key under its table name, values normalised. */
export function readOptions(t: Raw, r: ConfigReader, place: OptionsPlace): DhcpOptionValues {
  const v = t.options;
  if (v === undefined) return {};
  const section = `${place.section}.options`;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    r.fail(
      place.section,
      "options",
      'expected a table, e.g. options = { ntp = ["10.0.0.1"] }',
      place.at,
    );
  }
  const out: DhcpOptionValues = {};
  const keyOf = new Map<string, string>();
  for (const [key, value] of Object.entries(v as Raw)) {
    let name: string;
    try {
      const o = encodeOption(key, value);
      name = o.spec.name;
      out[name] = o.value;
    } catch (e) {
      if (!(e instanceof OptionValueError)) throw e;
      return r.fail(section, key, e.message, place.at);
    }
    const earlier = keyOf.get(name);
    if (earlier !== undefined) {
      r.fail(section, key, `given twice: as ${earlier} and as ${key}; keep one`, place.at);
    }
    keyOf.set(name, key);
  }
  return out;
}

/** `force_options`: option names or numbers sent even to clients that do not ask for them. */
export function readForceOptions(t: Raw, r: ConfigReader, place: OptionsPlace): string[] {
  const v = t.force_options;
  if (v === undefined) return [];
  const what = 'expected a list of option names or numbers, e.g. force_options = ["ntp", "224"]';
  if (!Array.isArray(v)) r.fail(place.section, "force_options", what, place.at);
  return [
    ...new Set(v.map((key) => {
      if (typeof key !== "string" && typeof key !== "number") {
        r.fail(place.section, "force_options", what, place.at);
      }
      try {
        return optionSpec(String(key)).name;
      } catch (e) {
        if (!(e instanceof OptionValueError)) throw e;
        return r.fail(place.section, "force_options", `${key}: ${e.message}`, place.at);
      }
    })),
  ];
}

/**
 * Refuses an option that duplicates a key of its own section (`[dhcp] router` and
 * `[dhcp.options] router`): which one wins would be a guess.
 */
export function refuseTwice(
  t: Raw,
  options: DhcpOptionValues,
  keys: readonly string[],
  r: ConfigReader,
  place: OptionsPlace,
): void {
  for (const key of keys) {
    if (t[key] !== undefined && key in options) {
      r.fail(
        `${place.section}.options`,
        key,
        `given twice: as ${place.section}.${key} and in its options; keep one`,
        place.at,
      );
    }
  }
}

/** What the DHCP policy gets: values by code, forced codes. */
export function configuredOptions(
  values: DhcpOptionValues,
  force: readonly string[],
): ConfiguredOptions {
  return {
    values: encodeOptions(values),
    force: new Set(force.map((name) => optionSpec(name).code)),
  };
}
