/**
 * Shared pieces of the DHCP tests: run Deno scripts inside a namespace and follow their
 * output line by line.
 *
 * @module
 */
import type { Netns } from "./netns.ts";

/** Permissions a DHCP process needs inside its namespace. */
export const DENO_NS_FLAGS = [
  "--unstable-net",
  "--allow-ffi",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  "--allow-net",
  "--allow-env",
];

/** Absolute path of a file in this repository, for subprocesses started elsewhere. */
export function repoPath(rel: string): string {
  return new URL(`../${rel}`, import.meta.url).pathname;
}

/** A child process whose stdout is split into lines as they come. */
export class LineFollower {
  readonly lines: string[] = [];
  #stderr = "";
  #waiters: (() => void)[] = [];
  #done: Promise<void>;

  constructor(readonly child: Deno.ChildProcess) {
    this.#done = Promise.all([this.#pump(), this.#pumpErr()]).then(() => {});
  }

  async #pump(): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of this.child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.#waiters.splice(0).forEach((w) => w());
    }
    if (buf) this.lines.push(buf);
    this.#waiters.splice(0).forEach((w) => w());
  }

  async #pumpErr(): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of this.child.stderr) this.#stderr += dec.decode(chunk);
  }

  /** Everything printed so far, stdout then stderr; for failure messages. */
  get output(): string {
    return this.lines.join("\n") + "\n" + this.#stderr;
  }

  /** Waits until a line satisfies `pred`; throws with the output so far after `ms`. */
  async waitFor(pred: (line: string) => boolean, ms: number, what = "line"): Promise<string> {
    const deadline = Date.now() + ms;
    let seen = 0;
    for (;;) {
      for (; seen < this.lines.length; seen++) {
        if (pred(this.lines[seen]!)) return this.lines[seen]!;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}; output:\n${this.output}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((r) => this.#waiters.push(r)),
        new Promise<void>((r) => timer = setTimeout(r, Math.min(left, 500))),
      ]);
      clearTimeout(timer);
    }
  }

  /** Waits for the process to end (after it was told to stop) and for its output. */
  async finished(ms = 10_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, ms);
    const status = await this.child.status;
    await this.#done;
    clearTimeout(timer);
    return status;
  }

  /** Sends SIGTERM and waits for the end. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* already gone */ }
    return await this.finished();
  }
}

/** Starts `deno run <flags> <script> <args>` inside the namespace. */
export function spawnDeno(ns: Netns, script: string, args: string[]): LineFollower {
  return new LineFollower(
    ns.spawn(["deno", "run", ...DENO_NS_FLAGS, repoPath(script), ...args]),
  );
}

/** Lines of a follower parsed as JSON, skipping others. */
export function jsonLines(f: LineFollower): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of f.lines) {
    try {
      const v = JSON.parse(l);
      if (v && typeof v === "object") out.push(v);
    } catch { /* not JSON */ }
  }
  return out;
}
