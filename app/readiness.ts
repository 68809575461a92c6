/**
 * What `/readyz` reports: each server says when it listens, and the boot tree is asked
 * whether it can be read (for IPFS: the root reachable through a gateway or in the cache).
 *
 * @module
 */
import type { ContentStore } from "../content/store.ts";
import type { Check } from "../http/health_routes.ts";
import { errorMessage } from "../log.ts";

// A probe must not send a request to a gateway per probe.
const CONTENT_CACHE_MS = 5000;

/** The readiness of the parts of one `serve`. */
export class Readiness {
  #parts = new Map<string, Check>();
  #content: { at: number; check: Check } | undefined;

  /** `timeoutMs`: how long the tree may take to answer a probe (default 3 s). */
  constructor(
    public store: ContentStore,
    readonly options: { timeoutMs?: number; now?: () => number } = {},
  ) {}

  /** Probes `store` from now on (a reload opened another tree). */
  setStore(store: ContentStore): void {
    this.store = store;
    this.#content = undefined;
  }

  #now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Declares a part that is not ready yet. */
  expect(name: string, detail = "starting"): void {
    this.#parts.set(name, { ok: false, detail });
  }

  /** Marks a part as ready (or not), with what a person should know. */
  set(name: string, ok: boolean, detail: string): void {
    this.#parts.set(name, { ok, detail });
  }

  /** Every part's check, the boot tree's included. */
  async report(): Promise<Record<string, Check>> {
    return { ...Object.fromEntries(this.#parts), content: await this.#contentCheck() };
  }

  async #contentCheck(): Promise<Check> {
    const cached = this.#content;
    if (cached && this.#now() - cached.at < CONTENT_CACHE_MS) return cached.check;
    const check = await this.#probe();
    this.#content = { at: this.#now(), check };
    return check;
  }

  async #probe(): Promise<Check> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ms = this.options.timeoutMs ?? 3000;
    const timeout = new Promise<Check>((resolve) => {
      timer = setTimeout(
        () => resolve({ ok: false, detail: `${this.store.description}: no answer in ${ms} ms` }),
        ms,
      );
    });
    const stat = this.store.list("").then(
      (names): Check =>
        names.length > 0
          ? { ok: true, detail: this.store.description }
          : { ok: false, detail: `${this.store.description}: the tree is empty or missing` },
      (e): Check => ({ ok: false, detail: `${this.store.description}: ${errorMessage(e)}` }),
    );
    try {
      return await Promise.race([stat, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
