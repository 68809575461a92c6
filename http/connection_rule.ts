/**
 * Which HTTP connections to shut down, given what each is doing: the one rule behind the
 * server's idle timeout and its connection caps (see `server.ts`). Pure: no clock, no sockets.
 *
 * @module
 */
import type { HttpCutReason } from "../observe/watch.ts";

/** A connection as the rule sees it. */
export interface ConnectionView {
  /** What identifies it to the caller (the socket inode). */
  id: number;
  /** The client's address: the per-client cap counts these. */
  client: string;
  /** A request is being answered on it, or the client has not yet taken all it was sent. */
  busy: boolean;
  /** Since when it has not been busy: first seen, or the end of its last response (ms). */
  idleSince: number;
}

/** The limits of the rule. */
export interface ConnectionLimits {
  /** A connection not busy for longer than this is cut (ms). */
  idleTimeoutMs: number;
  /** At most this many connections in all … */
  maxConnections: number;
  /** … and this many from one client address. */
  maxPerClient: number;
}

/** One connection to cut and why. */
export interface Cut {
  id: number;
  reason: HttpCutReason;
}

/**
 * The connections to cut at time `now`: every one idle longer than the timeout; then, where a
 * client holds more than its cap, its idle ones, longest idle first, until it is within; then,
 * while the total is over its cap, idle ones of anyone, longest idle first. A busy connection
 * is never cut, so a cap may stay exceeded while requests run.
 */
export function connectionsToCut(
  conns: readonly ConnectionView[],
  now: number,
  limits: ConnectionLimits,
): Cut[] {
  const cuts: Cut[] = [];
  const kept: ConnectionView[] = [];
  for (const c of conns) {
    if (!c.busy && now - c.idleSince > limits.idleTimeoutMs) {
      cuts.push({ id: c.id, reason: "idle" });
    } else {
      kept.push(c);
    }
  }
  const longestIdleFirst = (a: ConnectionView, b: ConnectionView) =>
    a.idleSince - b.idleSince || a.id - b.id;
  const byClient = new Map<string, ConnectionView[]>();
  for (const c of kept) {
    const list = byClient.get(c.client);
    if (list) list.push(c);
    else byClient.set(c.client, [c]);
  }
  const cutIds = new Set<number>();
  for (const list of byClient.values()) {
    if (list.length <= limits.maxPerClient) continue;
    const idle = list.filter((c) => !c.busy).sort(longestIdleFirst);
    for (const c of idle.slice(0, list.length - limits.maxPerClient)) {
      cuts.push({ id: c.id, reason: "max_per_client" });
      cutIds.add(c.id);
    }
  }
  const left = kept.filter((c) => !cutIds.has(c.id));
  if (left.length > limits.maxConnections) {
    const idle = left.filter((c) => !c.busy).sort(longestIdleFirst);
    for (const c of idle.slice(0, left.length - limits.maxConnections)) {
      cuts.push({ id: c.id, reason: "max_connections" });
    }
  }
  return cuts;
}
