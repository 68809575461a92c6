/**
 * The one logger of the program: created in main.ts and passed to every part.
 *
 * Every line is `(subsystem, message, fields)`. On a terminal it prints a short readable
 * line; under systemd (stdout connected to the journal: `JOURNAL_STREAM` set) the same line
 * without the time, which journald adds, and with the priority prefix journald reads (`<6>`
 * info, `<4>` warning, sd-daemon(3)); otherwise (CI, pipes, files) one JSON object per line.
 *
 * Lines for stdout are gathered and written together at most {@linkcode FLUSH_MS} after the
 * first of them (a write per access-log line, and even a timer per turn of the event loop,
 * cost as much as answering a small request): one `write(2)` for every request of those
 * milliseconds. A warning or an error is written at once, after the lines before it, and what
 * is gathered is written when the process exits.
 *
 * @module
 */

/** Severity, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";

/** Structured fields attached to a log line. */
export type Fields = Record<string, unknown>;

/** What every part of the program receives to report what it does. */
export interface Logger {
  debug(subsystem: string, message: string, fields?: Fields): void;
  info(subsystem: string, message: string, fields?: Fields): void;
  warn(subsystem: string, message: string, fields?: Fields): void;
  error(subsystem: string, message: string, fields?: Fields): void;
  /**
   * A writer of one kind of line, its level, subsystem, message and field names given once:
   * `write([v1, v2])` logs what `info(subsystem, message, { k1: v1, k2: v2 })` would, in the
   * same text; `write(values, other)` the same with the message `other` (a line whose message
   * names what it is about, as a DHCP reply's does). For lines written per request: no fields
   * object to spread, no keys to walk (the access log line of a small file's answer cost ~6 %
   * less, measured). Optional: use it through {@linkcode preparedLine}, which falls back to the
   * level's method.
   */
  prepare?(level: Level, subsystem: string, message: string, keys: readonly string[]): LineWriter;
}

/** The values of a prepared line, in the order of its keys. */
export type LineValues = readonly (string | number | null)[];

/** Writes one kind of line, with its own message or another; see {@linkcode Logger.prepare}. */
export type LineWriter = (values: LineValues, message?: string) => void;

/** `logger.prepare(...)`, else a writer that calls the level's method with the fields. */
export function preparedLine(
  logger: Logger,
  level: Level,
  subsystem: string,
  message: string,
  keys: readonly string[],
): LineWriter {
  if (logger.prepare) return logger.prepare(level, subsystem, message, keys);
  return (values, other) => {
    const fields: Fields = {};
    for (let i = 0; i < keys.length; i++) fields[keys[i]!] = values[i];
    logger[level](subsystem, other ?? message, fields);
  };
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped. Default "info". */
  level?: Level;
  /**
   * "json" for JSON lines, "text" for a readable line, "journal" for a readable line with a
   * syslog priority prefix; default: journal under systemd, text on a terminal, else json.
   */
  format?: LogFormat;
  /** Where lines go, one call each; default stdout, gathered for a few ms. Tests pass an array. */
  write?: (line: string) => void;
}

/** How lines are written; see {@linkcode LoggerOptions}. */
export type LogFormat = "json" | "text" | "journal";

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** syslog priorities (LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR) for journald's `<N>` prefix. */
const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** The default format: journal when systemd connected stdout to the journal, then by terminal. */
export function defaultLogFormat(): LogFormat {
  let journal: string | undefined;
  try {
    journal = Deno.env.get("JOURNAL_STREAM");
  } catch {
    // Without --allow-env: no way to know; the terminal test decides.
  }
  if (journal) return "journal";
  return stdoutIsTerminal() ? "text" : "json";
}

/** What went wrong, as text: an Error's message, or anything else that was thrown, made a string. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function stdoutIsTerminal(): boolean {
  try {
    return Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

function text(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") return /^[\w.:/@+-]*$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

function plain(fields: Fields): Fields {
  let out: Fields | undefined;
  for (const k in fields) {
    const v = fields[k];
    // Copied only when an error must become its message (the access log has none).
    if (v instanceof Error) (out ??= { ...fields })[k] = v.message;
  }
  return out ?? fields;
}

const encoder = new TextEncoder();

/** How long a line may wait for others before stdout gets it. */
export const FLUSH_MS = 2;

/** Lines bound for stdout, gathered for up to FLUSH_MS (one process, one order). */
const stdoutLines: string[] = [];
let stdoutBytes = 0;
let stdoutTimer: ReturnType<typeof setTimeout> | undefined;
let stdoutAtExit = false;

/** Writes the gathered lines now. */
export function flushLog(): void {
  clearTimeout(stdoutTimer);
  stdoutTimer = undefined;
  if (stdoutLines.length === 0) return;
  const bytes = encoder.encode(stdoutLines.join("\n") + "\n");
  stdoutLines.length = 0;
  stdoutBytes = 0;
  try {
    // A pipe takes part of a large write at a time.
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch {
    // stdout is gone (a closed pipe): the lines have nowhere to go, the program goes on.
  }
}

function toStdout(line: string, now: boolean): void {
  stdoutLines.push(line);
  stdoutBytes += line.length;
  if (!stdoutAtExit) {
    stdoutAtExit = true;
    globalThis.addEventListener("unload", flushLog);
  }
  if (now || stdoutBytes > 65_536) return flushLog();
  if (stdoutTimer !== undefined) return;
  stdoutTimer = setTimeout(flushLog, FLUSH_MS);
  // Lines are no reason to keep the process alive: the unload listener writes them.
  Deno.unrefTimer(stdoutTimer);
}

/** The keys a JSON line starts with. */
const LINE_KEYS = new Set(["time", "level", "subsystem", "msg"]);

/** Printable ASCII but `"` and `\`: a JSON string as it is, between quotes. */
const JSON_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonValue(v: string | number | null): string {
  if (v === null) return "null";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "null";
  return JSON_PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
}

/**
 * The line writer of `createLogger` (see {@linkcode Logger.prepare}), or undefined when the
 * keys would not write as they do in a fields object: named like a line's own keys, like an
 * array index (such keys come first in an object), or twice.
 */
function lineWriter(
  format: LogFormat,
  level: Level,
  subsystem: string,
  message: string,
  keys: readonly string[],
  out: (line: string) => void,
): LineWriter | undefined {
  if (new Set(keys).size < keys.length || keys.some((k) => /^\d/.test(k))) return undefined;
  if (format === "json") {
    if (keys.some((k) => LINE_KEYS.has(k))) return undefined;
    const start = `","level":"${level}","subsystem":${JSON.stringify(subsystem)},"msg":`;
    const head = start + JSON.stringify(message);
    const names = keys.map((k) => `,${JSON.stringify(k)}:`);
    return (values, other) => {
      let line = `{"time":"${isoNow()}${other === undefined ? head : start + jsonValue(other)}`;
      for (let i = 0; i < names.length; i++) {
        const v = values[i];
        // Left out, as JSON.stringify leaves out an undefined field (the types allow none).
        if (v !== undefined) line += names[i]! + jsonValue(v);
      }
      out(line + "}");
    };
  }
  const head = readableHead(subsystem, message);
  const names = keys.map((k) => ` ${k}=`);
  return (values, other) => {
    let line = other === undefined ? head : readableHead(subsystem, other);
    for (let i = 0; i < names.length; i++) line += names[i]! + text(values[i]);
    out(framed(format, level, line));
  };
}

/** A text or journal line. */
function readable(
  format: "text" | "journal",
  level: Level,
  subsystem: string,
  message: string,
  fields: Fields,
): string {
  const extra = Object.entries(fields).map(([k, v]) => `${k}=${text(v)}`).join(" ");
  return framed(format, level, readableHead(subsystem, message) + (extra ? " " + extra : ""));
}

/** The start of a text or journal line: `[subsystem] message`, on one line. */
function readableHead(subsystem: string, message: string): string {
  // One line each: a newline in a message would start a new journal entry.
  return `[${subsystem}] ${message.replaceAll("\n", " ")}`;
}

/** A text or journal line around its body: journald's priority, or the time and level. */
function framed(format: "text" | "journal", level: Level, body: string): string {
  if (format === "journal") return `<${PRIORITY[level]}>${body}`;
  const lvl = level === "info" ? "" : ` ${level.toUpperCase()}`;
  return `${isoNow().slice(11, 23)}${lvl} ${body}`;
}

/** The ISO time of the last line and its millisecond: a busy turn's lines share it. */
let isoMs = -1;
let iso = "";

/** `new Date().toISOString()`, formatted once per millisecond (a third of a line's cost). */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  return iso;
}

/** Creates the logger; see {@linkcode LoggerOptions}. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? "info"];
  const format = options.format ?? defaultLogFormat();
  const sink = options.write;
  const emit = (level: Level) => (subsystem: string, message: string, fields: Fields = {}) => {
    if (ORDER[level] < min) return;
    const line = format === "json"
      ? JSON.stringify({
        time: isoNow(),
        level,
        subsystem,
        msg: message,
        ...plain(fields),
      })
      : readable(format, level, subsystem, message, fields);
    if (sink) sink(line);
    else toStdout(line, ORDER[level] >= ORDER.warn);
  };
  const logger: Logger = {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
  };
  logger.prepare = (level, subsystem, message, keys) => {
    if (ORDER[level] < min) return () => {};
    const now = ORDER[level] >= ORDER.warn;
    const out = sink ?? ((line: string) => toStdout(line, now));
    return lineWriter(format, level, subsystem, message, keys, out) ??
      preparedLine({ ...logger, prepare: undefined }, level, subsystem, message, keys);
  };
  return logger;
}

/** A logger that drops everything; for tests and library defaults. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** A logger that keeps lines in memory; for tests that assert on logging. */
export function memoryLogger(): Logger & {
  lines: { level: Level; subsystem: string; message: string; fields: Fields }[];
} {
  const lines: { level: Level; subsystem: string; message: string; fields: Fields }[] = [];
  const push = (level: Level) => (subsystem: string, message: string, fields: Fields = {}) => {
    lines.push({ level, subsystem, message, fields });
  };
  return {
    lines,
    debug: push("debug"),
    info: push("info"),
    warn: push("warn"),
    error: push("error"),
  };
}
