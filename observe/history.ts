/**
 * The lasting boot history of each machine, written from the live boot events: the steps a
 * person looks up later (`astralboot machine list`, `/api/machines/:mac`) — scripts, menu
 * choices, installer configs, progress, the callback, local-disk boots.
 *
 * A request's line equal to the machine's last one is left out for {@linkcode REPEAT_MS}
 * (see there); what a machine reports and what an admin does always counts. The rule lives
 * here, with the stages, and not in the store: `BootHistory` writes what it is given, which is
 * also what the command line writes from another process.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Mac } from "../net/mac.ts";
import type { BootHistory } from "../state/history.ts";
import { isBusy } from "../state/db.ts";
import { type BootStage, RecentMap, type WatchEvent } from "./events.ts";

/** The stages kept in a machine's history; DHCP and file transfers are for the live feed only. */
export const HISTORY_STAGES: ReadonlySet<BootStage> = new Set<BootStage>([
  "menu",
  "script",
  "chosen",
  "config",
  "progress",
  "installed",
  "reinstall",
  "local-boot",
]);

/**
 * The history stages a request makes, which a client may repeat (iPXE retrying, a boot loop, or
 * anyone asking for a machine's menu over and over); reports and admin actions always count.
 */
const REQUEST_STAGES: ReadonlySet<BootStage> = new Set<BootStage>([
  "menu",
  "script",
  "chosen",
  "config",
  "local-boot",
]);

/**
 * A request's line equal to the machine's last one (stage, text, address) within this long is
 * not written again: a repeating client neither floods the table nor pushes the machine's older
 * lines out of its bounded history. A repeat that goes on is written once every this long.
 */
export const REPEAT_MS = 10_000;

/** Machines whose last line is remembered for {@linkcode REPEAT_MS}; the least recent beyond. */
const LAST_KEPT = 4096;

/**
 * An observer for `EventLog.observe` that writes history lines to `history` (or to what it
 * returns, for a server whose reload replaces the store: the last lines are remembered across
 * it); a write that throws is logged: at debug level when the database is busy (another process
 * holds its lock, as an admin's backup may), else as a warning, and it is not remembered as the
 * machine's last line. A store with a bookkeeping queue (the server's) throws nothing: its line is
 * remembered when queued, and a batch the queue gives up loses its repeats too.
 */
export function historyWriter(
  history: BootHistory | (() => BootHistory),
  logger: Logger,
): (event: WatchEvent) => void {
  const store = typeof history === "function" ? history : () => history;
  const last = new RecentMap<Mac, WatchEvent>(LAST_KEPT);
  return (event) => {
    const mac = event.mac;
    if (mac === null || !HISTORY_STAGES.has(event.stage)) return;
    const prev = last.get(mac);
    if (
      prev && REQUEST_STAGES.has(event.stage) && prev.stage === event.stage &&
      prev.detail === event.detail && prev.ip === event.ip &&
      // A clock stepped back writes the line: it is not known to be a repeat.
      event.time >= prev.time && event.time - prev.time < REPEAT_MS
    ) return;
    try {
      store().record(mac, event.stage, event.detail, event.ip, event.time);
      last.set(mac, event);
    } catch (e) {
      // The history is a record of what happened, never a reason for a boot to fail.
      if (isBusy(e)) {
        logger.debug("history", "history line not written: database busy", { mac });
      } else logger.warn("history", "history line not written", { mac, error: e });
    }
  };
}
