/**
 * Headless Chromium in a test namespace, driven from the test over the DevTools protocol.
 *
 * The browser runs inside the namespace (so it reaches nothing but what the test put there),
 * and its DevTools port listens on that namespace's loopback, out of the test's reach: so
 * tests/chromium_runner.ts starts it there and relays the page's DevTools messages over its
 * stdin and stdout. Needs root and the `chromium` package (tests/setup.sh).
 *
 * @module
 */
import { type LineFollower, spawnDeno } from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";

/** A DevTools event of the page: its method and parameters. */
export interface DevToolsEvent {
  method: string;
  params: Record<string, unknown>;
}

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

const encoder = new TextEncoder();

/** One browser with one page; launch with {@linkcode Chromium.launch}, end with `close()`. */
export class Chromium {
  #next = 0;
  #pending = new Map<number, Pending>();
  #listeners: ((e: DevToolsEvent) => void)[] = [];
  #runner!: LineFollower;
  #stdin!: WritableStreamDefaultWriter<Uint8Array>;
  #closed = false;

  private constructor() {}

  /** Starts Chromium in `ns` with a `width`×`height` window; resolves once its page answers. */
  static async launch(ns: Netns, width = 1280, height = 900): Promise<Chromium> {
    const b = new Chromium();
    b.#runner = spawnDeno(ns, "tests/chromium_runner.ts", [String(width), String(height)], {
      stdin: "piped",
      onLine: (line) => b.#receive(line),
    });
    b.#stdin = b.#runner.child.stdin.getWriter();
    b.#runner.child.status.then(() => b.#fail("Chromium's runner ended"));
    try {
      const line = await b.#runner.waitFor((l) => l.startsWith('{"relay"'), 30_000, "Chromium");
      if (!line.includes('"ready"')) throw new Error(line);
    } catch (e) {
      await b.close();
      throw new Error(`Chromium did not start:\n${b.#runner.output}`, { cause: e });
    }
    return b;
  }

  #receive(line: string): void {
    let msg: { id?: number; method?: string; params?: unknown; result?: unknown; error?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.id !== undefined) {
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(`DevTools: ${JSON.stringify(msg.error)}`));
      else p?.resolve((msg.result ?? {}) as Record<string, unknown>);
    } else if (msg.method) {
      const e = { method: msg.method, params: (msg.params ?? {}) as Record<string, unknown> };
      for (const fn of this.#listeners) fn(e);
    }
  }

  #fail(why: string): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(new Error(why));
    this.#pending.clear();
  }

  /** Sends one DevTools command to the page; its result, or an error after `ms`. */
  async call(method: string, params: object = {}, ms = 10_000): Promise<Record<string, unknown>> {
    if (this.#closed) throw new Error(`${method}: Chromium is closed`);
    const id = ++this.#next;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer within ${ms} ms`));
      }, ms);
    });
    try {
      await this.#stdin.write(encoder.encode(JSON.stringify({ id, method, params }) + "\n"));
      return await answer;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Calls `fn` with every event of the page from now on (enable its domain to get any). */
  on(fn: (e: DevToolsEvent) => void): void {
    this.#listeners.push(fn);
  }

  /** The value of a JavaScript expression in the page (awaited); throws what the page threw. */
  async evaluate<T = unknown>(expression: string, ms = 10_000): Promise<T> {
    const r = await this.call(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
      ms,
    );
    if (r.exceptionDetails) {
      throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
    }
    return (r.result as { value?: T }).value as T;
  }

  /** Ends the browser (its runner kills Chromium by PID) and waits for it, at most 15 s. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#stdin.close().catch(() => {});
    await this.#runner.finished(15_000);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
