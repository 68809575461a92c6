/**
 * Reading config.toml values with one clear error per mistake: the file, the line, the key,
 * what was found and what is allowed. Every read is typed (a string, an IPv4 address, a
 * duration …); nothing here knows which keys exist.
 *
 * @module
 */
import { isIpv4 } from "../net/ipv4.ts";

/** A TOML table as parsed. */
export type Raw = Record<string, unknown>;

/** A config problem: names the key, the line where known, and what is allowed. Exit code 2. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** Which element of an array of tables (`[[machine]]` number `index`, from 0) a key is in. */
export interface TableIndex {
  array: string;
  index: number;
}

/**
 * Finds the 1-based line that sets `key` (optionally inside `[section]`, and inside element `at`
 * of an array of tables: `[machine.options]` belongs to the `[[machine]]` above it), for
 * messages.
 */
export function lineOf(
  source: string,
  section: string,
  key: string,
  at?: TableIndex,
): number | undefined {
  const lines = source.split("\n");
  let current = "";
  let elements = 0;
  const pattern = new RegExp(`^"?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"?\\s*=`);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const header = /^\[\[?\s*([\w.-]+)\s*\]\]?/.exec(line);
    if (header) {
      current = header[1]!;
      if (at && line.startsWith("[[") && current === at.array) elements++;
      continue;
    }
    if (current === section && (!at || elements - 1 === at.index) && pattern.test(line)) {
      return i + 1;
    }
  }
  return undefined;
}

/** Typed reads of one parsed file; every failure is a {@linkcode ConfigError}. */
export class ConfigReader {
  /** `fromEnv`: keys ("http.port") set by an environment variable, and its name. */
  constructor(
    readonly source: string,
    readonly file: string,
    readonly fromEnv: ReadonlyMap<string, string> = new Map(),
  ) {}

  /**
   * Throws the error of `section.key`: named by the environment variable that set it, else by
   * the file's line. A key of a sub-table written inline (`options = { ntp = … }`) is found on
   * the line of the table's own key.
   */
  fail(section: string, key: string, what: string, at?: TableIndex): never {
    const name = section ? `${section}.${key}` : key;
    const env = this.fromEnv.get(name);
    if (env) throw new ConfigError(`${env}: ${name}: ${what}`);
    const dot = section.lastIndexOf(".");
    const line = lineOf(this.source, section, key, at) ??
      (dot > 0
        ? lineOf(this.source, section.slice(0, dot), section.slice(dot + 1), at)
        : undefined);
    throw new ConfigError(`${this.file}${line ? `:${line}` : ""}: ${name}: ${what}`);
  }

  /** Where `section.key` was set: `config.toml:12`, `$ASTRALBOOT_HTTP_PORT`, or null (default). */
  sourceOf(section: string, key: string): string | null {
    const env = this.fromEnv.get(section ? `${section}.${key}` : key);
    if (env) return `$${env}`;
    const line = lineOf(this.source, section, key);
    return line ? `${this.file}:${line}` : null;
  }

  str(t: Raw, section: string, key: string): string | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.fail(section, key, `expected a string, got ${typeName(v)}`);
    return v;
  }

  ip(t: Raw, section: string, key: string): string | undefined {
    const v = this.str(t, section, key);
    if (v === undefined) return undefined;
    if (!isIpv4(v)) {
      this.fail(section, key, `expected an IPv4 address like "10.0.0.1", got ${JSON.stringify(v)}`);
    }
    return v;
  }

  ips(t: Raw, section: string, key: string): string[] | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list)) this.fail(section, key, `expected an IPv4 address or a list of them`);
    return list.map((x) => {
      if (typeof x !== "string") {
        this.fail(section, key, `expected IPv4 address strings, got ${typeName(x)}`);
      }
      if (!isIpv4(x)) {
        this.fail(
          section,
          key,
          `expected an IPv4 address like "10.0.0.1", got ${JSON.stringify(x)}`,
        );
      }
      return x;
    });
  }

  int(t: Raw, section: string, key: string, min: number, max: number): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) {
      this.fail(section, key, `expected a whole number, got ${typeName(v)}`);
    }
    if (n < min || n > max) this.fail(section, key, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  seconds(t: Raw, section: string, key: string): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v === "number" || typeof v === "bigint") {
      const n = Number(v);
      if (n <= 0) this.fail(section, key, `must be positive, got ${n}`);
      return n;
    }
    if (typeof v === "string") {
      const s = parseDuration(v);
      if (s !== null) return s;
    }
    return this.fail(
      section,
      key,
      `expected seconds or a duration like "24h", "30m", "90s", got ${JSON.stringify(v)}`,
    );
  }

  /** A size in bytes: a whole number, or a string like "10GiB", "500MiB", "2GB". */
  bytes(t: Raw, section: string, key: string): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const n = typeof v === "bigint"
      ? Number(v)
      : typeof v === "number"
      ? v
      : typeof v === "string"
      ? parseByteSize(v)
      : null;
    if (n === null || !Number.isSafeInteger(n) || n < 0) {
      return this.fail(
        section,
        key,
        `expected bytes as a whole number or a size like "10GiB", "500MiB", "2GB", got ${
          typeName(v)
        }`,
      );
    }
    return n;
  }

  bool(t: Raw, section: string, key: string): boolean | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") {
      this.fail(section, key, `expected true or false, got ${typeName(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(
    t: Raw,
    section: string,
    key: string,
    allowed: readonly T[],
  ): T | undefined {
    const v = this.str(t, section, key);
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) {
      this.fail(
        section,
        key,
        `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(v)}`,
      );
    }
    return v as T;
  }

  table(t: Raw, key: string): Raw {
    const v = t[key];
    if (v === undefined) return {};
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail("", key, `expected a table [${key}]`);
    }
    return v as Raw;
  }
}

/** How a value is called in messages: "a list", "string \"x\"" … */
export function typeName(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "a table";
  return `${typeof v} ${JSON.stringify(typeof v === "bigint" ? Number(v) : v)}`;
}

/** Parses "24h", "30m", "90s", "1d", "1h30m" or a bare number of seconds; null if invalid. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+)\s*([dhms])/gy;
  let total = 0, m: RegExpExecArray | null, consumed = 0;
  const unit = { d: 86400, h: 3600, m: 60, s: 1 } as const;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * unit[m[2] as keyof typeof unit];
    consumed = re.lastIndex;
  }
  return consumed === t.length && consumed > 0 && total > 0 ? total : null;
}

/** Size units as written in messages and the printed config; read case-insensitively. */
const BYTE_UNITS: [string, number][] = [
  ["B", 1],
  ["kB", 1e3],
  ["MB", 1e6],
  ["GB", 1e9],
  ["TB", 1e12],
  ["KiB", 2 ** 10],
  ["MiB", 2 ** 20],
  ["GiB", 2 ** 30],
  ["TiB", 2 ** 40],
];
const UNIT_BY_NAME = new Map(BYTE_UNITS.map(([name, size]) => [name.toLowerCase(), size]));

/**
 * Parses "10GiB", "500 MiB", "1.5GB", "4096B" or "4096" into bytes; null if invalid, and for a
 * size above 0 that is under one byte ("0.5"), which would read as 0: no limit.
 */
export function parseByteSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return null;
  const unit = m[2] === "" ? 1 : UNIT_BY_NAME.get(m[2]!.toLowerCase());
  if (unit === undefined) return null;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes === 0 && Number(m[1]) > 0 ? null : bytes;
}

/** Bytes in the largest unit that divides them ("10GiB", "2GB"), else the plain number. */
export function formatByteSize(n: number): number | string {
  let best: [string, number] | undefined;
  for (const [name, size] of BYTE_UNITS) {
    if (size > 1 && n > 0 && n % size === 0 && size > (best?.[1] ?? 0)) best = [name, size];
  }
  return best ? `${n / best[1]}${best[0]}` : n;
}
