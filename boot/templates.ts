/**
 * Renders the iPXE scripts and install configs from Vento templates.
 *
 * A template `<name>` for an OS is `boot/<os>/template/<name>.vto` from the content store
 * when there is one, else the default `templates/<name>.vto` embedded in the program.
 * `{{ include "x.vto" }}` inside an OS template looks in the same OS folder first, then in
 * the defaults. Compiled templates are cached; a store template is compiled again only
 * when its etag changes.
 *
 * The output of a template shipped in the program is remembered by its data (the
 * {@linkcode MEMO_SIZE} used last): those templates read nothing but their data, so the same data
 * gives the same text, and a machine asking for its menu again gets it without a render (a
 * render with the strict data cost three times the lookup). A tree's own templates are rendered
 * every time: Vento runs any JavaScript in them, and one may well print a fresh password or the
 * time.
 *
 * Templates are strict: reading a variable (or a key of an object) that the data does not
 * hold is an error naming the template, line and variable, never an empty string. Use
 * `"key" in machine.vars` to test for optional values.
 *
 * @module
 */
import vento from "ventojs";
import { defaultTags as CONTROL_TAGS } from "ventojs/plugins/auto_trim.js";
import type { Environment } from "ventojs/src/environment.js";
import { errorLine, TemplateError } from "ventojs/src/errors.js";
import type { ContentStore } from "../content/store.ts";
import { EMBEDDED_TEMPLATES } from "../templates/embedded.ts";
import { INSTALLER_TEMPLATES } from "../templates/installers/embedded.ts";
import { GRUB_TEMPLATES } from "../templates/grub/embedded.ts";

/**
 * The templates shipped in the program: iPXE scripts, GRUB configs and installer configs. Each installer
 * default is also there as `default-<name>.vto`, so an OS template can build on it:
 * `{{ include "default-preseed.vto" }}` then its own lines (in a preseed the last answer wins).
 */
export const DEFAULT_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  ...EMBEDDED_TEMPLATES,
  ...GRUB_TEMPLATES,
  ...INSTALLER_TEMPLATES,
  ...Object.fromEntries(Object.entries(INSTALLER_TEMPLATES).map(([k, v]) => [`default-${k}`, v])),
});

/** How many rendered texts of the shipped templates {@linkcode TemplateRenderer} keeps. */
export const MEMO_SIZE = 256;

/**
 * Data written longer than this (a class of a thousand machines: `cluster`) is rendered every
 * time rather than kept: {@linkcode MEMO_SIZE} such keys would hold tens of MiB.
 */
export const MEMO_KEY_MAX = 16 * 1024;

/** Data that {@linkcode dataKey} cannot write down exactly. */
class NoKey extends Error {}

const functionIds = new WeakMap<object, number>();
let nextFunctionId = 0;

/** One value of template data as text that tells it apart from any other; see dataKey. */
function write(v: unknown): string {
  switch (typeof v) {
    case "string":
      return `s${v.length}:${v}`;
    case "number":
      return Object.is(v, -0) ? "n-0;" : `n${v};`;
    case "boolean":
      return v ? "t" : "f";
    case "undefined":
      return "u";
    case "bigint":
      return `b${v};`;
    case "function": {
      let id = functionIds.get(v);
      if (id === undefined) functionIds.set(v, id = nextFunctionId++);
      return `F${id};`;
    }
    case "object": {
      if (v === null) return "z";
      if (Array.isArray(v)) {
        let out = "[";
        for (let i = 0; i < v.length; i++) {
          // A hole reads as undefined but is not `in` the array.
          if (!(i in v)) throw new NoKey();
          out += write(v[i]);
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(v);
      // Without a prototype `"toString" in v` is false: a template can tell.
      let out = proto === Object.prototype ? "{" : proto === null ? "{0" : "";
      if (out === "") throw new NoKey();
      for (const k in v) out += `${k.length}:${k}${write((v as Record<string, unknown>)[k])}`;
      return `${out}}`;
    }
    default:
      throw new NoKey();
  }
}

/**
 * Template data written out so that two datas get the same text only when a template can tell
 * nothing apart in them: every string and key with its length, numbers as JavaScript prints them
 * (NaN, Infinity and -0 included), undefined, whether an object has a prototype, and each
 * function by its identity. Null when the data holds an object of a class (a date, a map), a
 * sparse array or a symbol, or is nested too deep or in a cycle: such data is rendered every time.
 * As fast as `JSON.stringify` of the same data, which merges NaN with null and a date with its
 * text.
 *
 * It reads what a template can read of plain data: enumerable string keys, each value once. Data
 * is plain values, as `boot/template_data.ts` makes it: no getters, no symbol or hidden keys,
 * and the functions in it (`sh`, `grub_quote`) give the same answer for the same arguments.
 */
export function dataKey(data: Record<string, unknown>): string | null {
  try {
    return write(data);
  } catch (e) {
    // RangeError: the call stack ran out (a cycle, or data nested thousands deep).
    if (e instanceof NoKey || e instanceof RangeError) return null;
    throw e;
  }
}

/** Template names: one path segment, used in URLs (`/action/<os>/<name>`). */
export const TEMPLATE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A template that could not be compiled or rendered; names the file and line. */
export class TemplateRenderError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "TemplateRenderError";
  }
}

/** No template of that name for that OS, nor a default. */
export class TemplateNotFoundError extends Error {
  /** HTTP answers it with 404. */
  readonly status = 404;

  constructor(readonly template: string, readonly os?: string) {
    super(`no template ${template}.vto${os ? ` for ${os}` : ""}`);
    this.name = "TemplateNotFoundError";
  }
}

/** Raised by the strict data proxy. */
class UndefinedVariable extends ReferenceError {}

// Looked up by runtime machinery (promise resolution, JSON, inspection), not by templates.
const PASS = new Set(["then", "toJSON", "constructor", "inspect"]);

function isContainer(v: unknown): v is object {
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Wraps template data so that reading an unknown name throws instead of printing "". */
export function strictData<T extends object>(data: T, path = ""): T {
  return new Proxy(data, {
    get(target, key, receiver) {
      if (typeof key === "symbol" || PASS.has(key) || key in target) {
        const value = Reflect.get(target, key, receiver);
        if (typeof key === "symbol" || !isContainer(value)) return value;
        return strictData(value, Array.isArray(target) ? `${path}[${key}]` : joinPath(path, key));
      }
      const name = Array.isArray(target) ? `${path}[${key}]` : joinPath(path, key);
      const known = Array.isArray(target)
        ? `${target.length} items`
        : Object.keys(target).join(", ");
      throw new UndefinedVariable(`"${name}" is not defined (there is: ${known || "nothing"})`);
    },
  });
}

function joinPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

const STRICT_TAG = "__astral_strict_data__";

type Token = [string, string, number?];

function isControl(tokens: Token[], i: number): boolean {
  const t = tokens[i];
  if (!t) return false;
  if (t[0] === "comment") return true;
  if (t[0] !== "tag" || tokens[i + 1]?.[0] === "filter") return false;
  const code = t[1].replace(/^-/, "").replace(/-$/, "").trim();
  return CONTROL_TAGS.some((tag) => code === tag || code.startsWith(tag + " "));
}

/**
 * Removes the lines that hold only control tags (`if`, `for`, `set`, comments …) so a
 * line-oriented script comes out without blank lines. Vento's autoTrim also eats the
 * newline after a tag that ends a line of text (`kernel … {{ /if }}`), joining two
 * script lines; this only trims a line when nothing but control tags and blanks is on it.
 */
function trimControlLines(tokens: Token[]): void {
  const n = tokens.length;
  const text = (i: number) => tokens[i]?.[0] === "string" ? tokens[i]![1] : null;
  // left[i]: from the start of its line up to control tag i there are only blanks and
  // control tags; right[i]: the same from tag i to the end of its line.
  const left = new Array<boolean>(n).fill(false);
  const right = new Array<boolean>(n).fill(false);
  for (let i = 0; i < n; i++) {
    if (!isControl(tokens, i)) continue;
    const before = i === 0 ? "" : text(i - 1);
    if (before === null) continue;
    const tail = before.slice(before.lastIndexOf("\n") + 1);
    if (!/^[ \t]*$/.test(tail)) continue;
    left[i] = before.includes("\n") || i <= 1 || left[i - 2] === true;
  }
  for (let i = n - 1; i >= 0; i--) {
    if (!isControl(tokens, i)) continue;
    const after = i === n - 1 ? "" : text(i + 1);
    if (after === null) continue;
    const nl = after.indexOf("\n");
    if (!/^[ \t]*\r?$/.test(nl < 0 ? after : after.slice(0, nl))) continue;
    right[i] = nl >= 0 || i >= n - 2 || right[i + 2] === true;
  }
  for (let i = 0; i < n; i++) {
    if (!left[i] || !right[i]) continue;
    const prev = tokens[i - 1];
    if (prev?.[0] === "string") prev[1] = prev[1].replace(/[ \t]*$/, "");
    const next = tokens[i + 1];
    if (next?.[0] === "string") next[1] = next[1].replace(/^[ \t]*\r?\n?/, "");
  }
}

/** A Vento environment whose templates wrap their data with {@linkcode strictData}. */
function environment(
  loader: {
    load(id: string): Promise<{ source: string }>;
    resolve(from: string, file: string): string;
  },
): Environment {
  const env = vento({ includes: loader, autoescape: false });
  env.tokenPreprocessors.push((_env, tokens) => trimControlLines(tokens));
  env.utils.strictData = strictData;
  // Every compiled template starts by re-wrapping its data: Vento copies the data into a
  // plain object on entry (and include spreads it), which would drop an outer proxy.
  env.tags.push((_env, code) =>
    code === STRICT_TAG ? `it = __env.utils.strictData(it);` : undefined
  );
  env.tokenPreprocessors.push((_env, tokens) => {
    tokens.unshift(["tag", STRICT_TAG, 0]);
  });
  return env;
}

/** Options for {@linkcode TemplateRenderer}. */
export interface TemplateRendererOptions {
  /** The boot tree, for `boot/<os>/template/*.vto`. */
  store: ContentStore;
  /** Default templates by file name; {@linkcode DEFAULT_TEMPLATES} unless a test passes its own. */
  defaults?: Readonly<Record<string, string>>;
}

/** Renders named templates for an OS; see the module doc for the lookup rule. */
export class TemplateRenderer {
  #store: ContentStore;
  #defaults: Readonly<Record<string, string>>;
  #env: Environment;
  /** Etag (null: absent, so the default served) of every store path a template came from. */
  #seen = new Map<string, string | null>();
  /** Source of every string template compiled by {@linkcode renderString}. */
  #strings = new Map<string, string>();
  /** Texts of shipped templates by template id and {@linkcode dataKey}; see the module doc. */
  #memo = new Map<string, string>();

  constructor(options: TemplateRendererOptions) {
    this.#store = options.store;
    this.#defaults = options.defaults ?? DEFAULT_TEMPLATES;
    this.#env = environment({
      resolve: (from, file) => this.#resolve(from, file),
      load: (id) => this.#load(id),
    });
  }

  /** Where `{{ include file }}` from template `from` points. */
  #resolve(from: string, file: string): string {
    // Top-level renders pass ids this class already resolved.
    if (from === "") return file;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.vto$/.test(file)) {
      throw new Error(`include ${JSON.stringify(file)}: only a file name like "x.vto" is allowed`);
    }
    const os = /^boot\/([^/]+)\/template\//.exec(from)?.[1];
    return os ? `boot/${os}/template/${file}` : `templates/${file}`;
  }

  async #load(id: string): Promise<{ source: string }> {
    const base = id.slice(id.lastIndexOf("/") + 1);
    if (id.startsWith("boot/")) {
      const entry = await this.#store.stat(id);
      this.#seen.set(id, entry?.kind === "file" ? entry.etag : null);
      if (entry?.kind === "file") {
        return { source: await new Response(await this.#store.read(id)).text() };
      }
    }
    const source = this.#defaults[base];
    if (source === undefined) throw new Error(`template ${id} does not exist`);
    return { source };
  }

  /** Drops compiled store templates of `os` whose file changed, appeared or went away. */
  async #revalidate(os: string): Promise<void> {
    const prefix = `boot/${os}/template/`;
    for (const [id, etag] of this.#seen) {
      if (!id.startsWith(prefix)) continue;
      const entry = await this.#store.stat(id);
      const now = entry?.kind === "file" ? entry.etag : null;
      if (now !== etag) {
        this.#env.cache.delete(id);
        this.#seen.delete(id);
      }
    }
  }

  /** The id a template resolves to, or null when neither the OS nor the defaults have it. */
  async #find(name: string, os?: string): Promise<string | null> {
    if (!TEMPLATE_NAME.test(name)) return null;
    if (os !== undefined) {
      await this.#revalidate(os);
      const id = `boot/${os}/template/${name}.vto`;
      const seen = this.#seen.get(id);
      if (seen !== undefined ? seen !== null : (await this.#store.stat(id))?.kind === "file") {
        return id;
      }
    }
    return this.#defaults[`${name}.vto`] === undefined ? null : `templates/${name}.vto`;
  }

  /** Whether `render(name, …, os)` would find a template. */
  async has(name: string, os?: string): Promise<boolean> {
    return (await this.#find(name, os)) !== null;
  }

  /** Renders template `name` (without `.vto`) for `os` with `data`. */
  async render(name: string, data: Record<string, unknown>, os?: string): Promise<string> {
    const id = await this.#find(name, os);
    if (id === null) throw new TemplateNotFoundError(name, os);
    // Shipped templates (and what they include, shipped too: #resolve) read only their data.
    const written = id.startsWith("templates/") ? dataKey(data) : null;
    const key = written === null || written.length > MEMO_KEY_MAX ? null : `${id}\n${written}`;
    const known = key === null ? undefined : this.#memo.get(key);
    if (known !== undefined) {
      // Used last, dropped last.
      this.#memo.delete(key!);
      this.#memo.set(key!, known);
      return known;
    }
    try {
      const result = await this.#env.run(id, data);
      const out = result.content as string;
      if (key !== null && !this.#memo.has(key)) {
        if (this.#memo.size >= MEMO_SIZE) this.#memo.delete(this.#memo.keys().next().value!);
        this.#memo.set(key, out);
      }
      return out;
    } catch (err) {
      throw explain(err, id);
    }
  }

  /** Renders a template given as text (an os.toml `cmdline`); `id` names it in errors. */
  async renderString(id: string, source: string, data: Record<string, unknown>): Promise<string> {
    try {
      if (this.#strings.get(id) !== source) {
        this.#env.cache.set(id, Promise.resolve(this.#env.compile(source, id)));
        this.#strings.set(id, source);
      }
      const template = await this.#env.cache.get(id)!;
      return (await template(data)).content as string;
    } catch (err) {
      throw explain(err, id);
    }
  }
}

/** One line naming file, line and what went wrong, with the original error as cause. */
function explain(err: unknown, id: string): TemplateRenderError {
  if (err instanceof TemplateRenderError) return err;
  if (err instanceof TemplateError) {
    // An error from an included template comes wrapped once per include level.
    let inner: TemplateError = err;
    while (inner.cause instanceof TemplateError) inner = inner.cause;
    const { line, column } = errorLine(inner.source ?? "", inner.position);
    const cause = inner.cause as Error | undefined;
    const why = cause?.message?.split("\n")[0] ?? inner.message.split("\n")[0];
    return new TemplateRenderError(`${inner.path}:${line}:${column}: ${why}`, inner.path, line, {
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
  return new TemplateRenderError(`${id}: ${message}`, id, undefined, { cause: err });
}
