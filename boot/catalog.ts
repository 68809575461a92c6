/**
 * The OS list: one entry per folder under `boot/` of the content store.
 *
 * A folder `boot/<os>/` may hold `os.toml`, `template/*.vto` and `images/*`:
 *
 * ```toml
 * title = "Debian 12 installer"     # menu text; default: the folder name
 * kernel = "linux"                  # under images/; default: see below
 * initrd = ["initrd.gz"]            # a name or a list, under images/; default: see below
 * cmdline = "auto=true url={{ http }}/action/debian/preseed"   # Vento, rendered per machine
 * vars = { mirror = "deb.debian.org" }   # template variables of every machine of this OS
 *
 * [classes.server]                  # variants of the OS (kept for the class menu)
 * title = "Debian server"
 * vars = { tasks = "ssh-server" }
 * ```
 *
 * Without `kernel`, the kernel is `images/vmlinuz`, else `images/linux`, else the first
 * (by name) `images/kernel*`. Without `initrd`, the initrd is `images/initrd.gz`, else
 * `images/initrd.img`, else the first (by name) `images/initrd*`; none is fine.
 *
 * An OS with a bad `os.toml`, an unusable name, or neither a kernel nor a
 * `template/start.vto` is left out of the menu with one warning naming the file, line and
 * key; it never stops the others from loading.
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { type ContentStore, normalizeTreePath } from "../content/store.ts";
import { errorMessage, type Logger, silentLogger } from "../log.ts";

/** A variant of an OS (`[classes.<name>]`). */
export interface OsClass {
  name: string;
  title: string;
  vars: Record<string, unknown>;
}

/** One bootable OS of the tree. */
export interface OsEntry {
  /** Folder name under `boot/`; also the menu label and the URL segment. */
  name: string;
  title: string;
  /** Kernel path under `images/`, or null when `template/start.vto` does the booting. */
  kernel: string | null;
  /** Initrd paths under `images/`, in load order. */
  initrd: string[];
  /** Extra kernel arguments as written (a Vento template). */
  cmdline: string;
  classes: OsClass[];
  /** Template variables for every machine of this OS (`vars = { … }`); absent when unset. */
  vars?: Record<string, unknown>;
  /** Names of the OS's own templates (`template/<name>.vto`), sorted. */
  templates: string[];
  /** Where the entry came from: `boot/<os>/os.toml`, or `boot/<os>/` without one. */
  source: string;
}

/** Something wrong in one OS folder; `skipped` says whether it left the menu. */
export interface CatalogProblem {
  os: string;
  file: string;
  line?: number;
  key?: string;
  message: string;
  skipped: boolean;
}

/** An `os.toml` that cannot be used: names its file, line and key. */
export class OsTomlError extends SyntaxError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly key: string | undefined,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `${file}${line ? `:${line}` : ""}: ${key ? `key "${key}": ` : ""}${detail}`,
      options,
    );
    this.name = "OsTomlError";
  }
}

/** What `os.toml` may say, after checking; absent keys stay undefined. */
export interface OsToml {
  title?: string;
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  vars?: Record<string, unknown>;
  classes: OsClass[];
}

/** Names usable as a folder, an iPXE label and a URL segment. */
export const OS_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const KNOWN_KEYS = new Set(["title", "kernel", "initrd", "cmdline", "vars", "classes"]);
const CLASS_KEYS = new Set(["title", "vars"]);

/** Line of `key` inside `[table]` (top level when table is ""), best effort for messages. */
function lineOf(text: string, table: string, key?: string): number | undefined {
  const lines = text.split("\n");
  let current = "";
  let tableLine: number | undefined;
  const keyRe = key === undefined
    ? undefined
    : new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*=`);
  for (let i = 0; i < lines.length; i++) {
    const header = /^\s*\[{1,2}\s*([^\]]+?)\s*\]{1,2}/.exec(lines[i]!);
    if (header) {
      current = header[1]!.replace(/\s*\.\s*/g, ".").replace(/["']/g, "");
      if (current === table) tableLine = i + 1;
      continue;
    }
    if (current === table && keyRe?.test(lines[i]!)) return i + 1;
  }
  return tableLine;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v instanceof Date) return "date";
  return v === null ? "null" : typeof v;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Printable single-line text: menu titles and kernel arguments must not break a script. */
function oneLine(v: string): boolean {
  // deno-lint-ignore no-control-regex
  return !/[\x00-\x1f\x7f]/.test(v);
}

/**
 * Parses and checks an `os.toml`; throws {@linkcode OsTomlError} naming the line and key.
 * Unknown keys are not errors (a newer tree may carry them): they come back as `unknown`.
 */
export function parseOsToml(text: string, file: string): { meta: OsToml; unknown: string[] } {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const detail = err.message.split("\n")[0]!.replace(/^Invalid TOML document:\s*/, "");
      throw new OsTomlError(file, err.line, undefined, `${detail} (column ${err.column})`, {
        cause: err,
      });
    }
    throw new OsTomlError(file, undefined, undefined, String(err), { cause: err });
  }
  const fail = (table: string, key: string, detail: string): never => {
    throw new OsTomlError(file, lineOf(text, table, key.split(".").pop()), key, detail);
  };
  const str = (table: string, key: string, v: unknown, what = "a string"): string => {
    if (typeof v !== "string") return fail(table, key, `must be ${what} (got ${typeName(v)})`);
    if (!oneLine(v)) return fail(table, key, "must be one line without control characters");
    return v;
  };
  const imagePath = (key: string, v: unknown): string => {
    const s = str("", key, v);
    const norm = normalizeTreePath(s);
    if (norm === null) return fail("", key, `${JSON.stringify(s)} is not a path under images/`);
    return norm;
  };

  const meta: OsToml = { classes: [] };
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    switch (key) {
      case "title":
        meta.title = str("", key, value);
        if (meta.title.trim() === "") fail("", key, "must not be empty");
        break;
      case "kernel":
        meta.kernel = imagePath(key, value);
        break;
      case "initrd": {
        const list = Array.isArray(value) ? value : [value];
        if (typeof value !== "string" && !Array.isArray(value)) {
          fail("", key, `must be a string or a list of strings (got ${typeName(value)})`);
        }
        meta.initrd = list.map((v) => imagePath(key, v));
        break;
      }
      case "cmdline":
        meta.cmdline = str("", key, value);
        break;
      case "vars":
        if (!isTable(value)) fail("", key, `must be a table (got ${typeName(value)})`);
        meta.vars = structuredClone(value) as Record<string, unknown>;
        break;
      case "classes":
        if (!isTable(value)) fail("", key, `must be a table (got ${typeName(value)})`);
        for (const [name, body] of Object.entries(value as Record<string, unknown>)) {
          const table = `classes.${name}`;
          if (!OS_NAME.test(name)) fail(table, table, "class names are letters, digits, . _ -");
          if (!isTable(body)) fail("classes", table, `must be a table (got ${typeName(body)})`);
          const b = body as Record<string, unknown>;
          for (const k of Object.keys(b)) if (!CLASS_KEYS.has(k)) unknown.push(`${table}.${k}`);
          const vars = b.vars ?? {};
          if (!isTable(vars)) {
            fail(table, `${table}.vars`, `must be a table (got ${typeName(vars)})`);
          }
          meta.classes.push({
            name,
            title: b.title === undefined ? name : str(table, `${table}.title`, b.title),
            // smol-toml makes null-prototype objects; templates and tests expect plain ones.
            vars: structuredClone(vars) as Record<string, unknown>,
          });
        }
        break;
      default:
        if (!KNOWN_KEYS.has(key)) unknown.push(key);
    }
  }
  return { meta, unknown };
}

/** First existing name from `exact`, else the first (sorted) name starting with `prefix`. */
function pick(names: string[], exact: string[], prefix: string): string | undefined {
  return exact.find((n) => names.includes(n)) ?? names.find((n) => n.startsWith(prefix));
}

/** Reads one OS folder: its entry, or null and the reason when it cannot boot. */
async function loadOne(
  store: ContentStore,
  name: string,
): Promise<{ entry: OsEntry | null; problems: CatalogProblem[] }> {
  const dir = `boot/${name}`;
  const problems: CatalogProblem[] = [];
  const skip = (file: string, message: string, line?: number, key?: string) => {
    problems.push({ os: name, file, line, key, message, skipped: true });
    return { entry: null, problems };
  };
  if (!OS_NAME.test(name)) {
    return skip(dir, `${dir}: folder name must be letters, digits, . _ - (it is a URL and label)`);
  }
  const tomlPath = `${dir}/os.toml`;
  let meta: OsToml = { classes: [] };
  let text = "";
  const hasToml = (await store.stat(tomlPath))?.kind === "file";
  if (hasToml) {
    text = await new Response(await store.read(tomlPath)).text();
    try {
      const parsed = parseOsToml(text, tomlPath);
      meta = parsed.meta;
      for (const key of parsed.unknown) {
        problems.push({
          os: name,
          file: tomlPath,
          line: lineOf(text, "", key) ?? lineOf(text, key.split(".").slice(0, 2).join(".")),
          key,
          message: `${tomlPath}: key "${key}" is not known and was ignored`,
          skipped: false,
        });
      }
    } catch (err) {
      if (!(err instanceof OsTomlError)) throw err;
      return skip(tomlPath, err.message, err.line, err.key);
    }
  }
  const images = await store.list(`${dir}/images`);
  const templates = (await store.list(`${dir}/template`))
    .filter((n) => n.endsWith(".vto")).map((n) => n.slice(0, -4));

  // Files os.toml names must exist: a typo should show here, not as a failed boot.
  const named = [
    ...(meta.kernel ? [["kernel", meta.kernel]] : []),
    ...(meta.initrd ?? []).map((f) => ["initrd", f]),
  ];
  for (const [key, file] of named) {
    if ((await store.stat(`${dir}/images/${file}`))?.kind !== "file") {
      const line = lineOf(text, "", key);
      return skip(
        tomlPath,
        `${tomlPath}${line ? `:${line}` : ""}: key "${key}": ${dir}/images/${file} does not exist`,
        line,
        key,
      );
    }
  }
  const kernel = meta.kernel ?? pick(images, ["vmlinuz", "linux"], "kernel") ?? null;
  const initrd = meta.initrd ?? [pick(images, ["initrd.gz", "initrd.img"], "initrd")]
    .filter((n): n is string => n !== undefined);
  if (kernel === null && !templates.includes("start")) {
    return skip(
      dir,
      `${dir}: no kernel (images/vmlinuz, images/linux, images/kernel*, or kernel= in os.toml) ` +
        "and no template/start.vto",
    );
  }
  return {
    entry: {
      name,
      title: meta.title ?? name,
      kernel,
      initrd,
      cmdline: meta.cmdline ?? "",
      classes: meta.classes,
      ...(meta.vars ? { vars: meta.vars } : {}),
      templates,
      source: hasToml ? tomlPath : `${dir}/`,
    },
    problems,
  };
}

/** Reads every OS under `boot/`; problems never throw, they come back in the list. */
export async function loadCatalog(
  store: ContentStore,
): Promise<{ entries: OsEntry[]; problems: CatalogProblem[] }> {
  const entries: OsEntry[] = [];
  const problems: CatalogProblem[] = [];
  for (const name of await store.list("boot")) {
    if ((await store.stat(`boot/${name}`))?.kind !== "dir") continue;
    try {
      const one = await loadOne(store, name);
      if (one.entry) entries.push(one.entry);
      problems.push(...one.problems);
    } catch (err) {
      // A store failure (unreadable file, IPFS timeout) costs this OS, not the menu.
      problems.push({
        os: name,
        file: `boot/${name}`,
        message: `boot/${name}: cannot be read: ${errorMessage(err)}`,
        skipped: true,
      });
    }
  }
  return { entries, problems };
}

/** Options for {@linkcode OsCatalog}. */
export interface OsCatalogOptions {
  logger?: Logger;
  /** How long a loaded list is used before the tree is read again; default forever. */
  ttlMs?: number;
}

/** The OS list of a store, loaded on first use and again after `ttlMs` (local trees change). */
export class OsCatalog {
  #logger: Logger;
  #ttlMs: number;
  #loaded?: { at: number; entries: OsEntry[]; problems: CatalogProblem[] };
  #pending?: Promise<OsEntry[]>;
  #reported = "";

  constructor(readonly store: ContentStore, options: OsCatalogOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#ttlMs = options.ttlMs ?? Infinity;
  }

  /** The bootable OSes, sorted by name. */
  entries(): Promise<OsEntry[]> {
    if (this.#loaded && Date.now() - this.#loaded.at < this.#ttlMs) {
      return Promise.resolve(this.#loaded.entries);
    }
    return this.#pending ??= this.#load().finally(() => this.#pending = undefined);
  }

  /** One OS by folder name, or undefined. */
  async get(name: string): Promise<OsEntry | undefined> {
    return (await this.entries()).find((e) => e.name === name);
  }

  /** Problems found by the last load. */
  get problems(): readonly CatalogProblem[] {
    return this.#loaded?.problems ?? [];
  }

  /** Forgets the loaded list so the next call reads the tree again. */
  invalidate(): void {
    this.#loaded = undefined;
  }

  async #load(): Promise<OsEntry[]> {
    const { entries, problems } = await loadCatalog(this.store);
    this.#loaded = { at: Date.now(), entries, problems };
    // Reloads happen every ttlMs: report a problem once, not on every reload.
    const report = problems.map((p) => p.message).join("\n");
    if (report !== this.#reported) {
      for (const p of problems) {
        this.#logger.warn("catalog", p.skipped ? "OS left out of the menu" : "os.toml warning", {
          os: p.os,
          problem: p.message,
        });
      }
      this.#logger.info("catalog", "OS list loaded", {
        store: this.store.description,
        os: entries.map((e) => e.name).join(","),
      });
      this.#reported = report;
    }
    return entries;
  }
}
