/**
 * The lasting boot history of each machine, written from the live boot events: the steps a
 * person looks up later (`astralboot machine list`, `/api/machines/:mac`) — scripts, menu
 * choices, installer configs, progress, the callback, local-disk boots.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { BootHistory } from "../state/history.ts";
import { isBusy } from "../state/db.ts";
import type { BootStage, WatchEvent } from "./events.ts";

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
 * An observer for `EventLog.observe` that writes history lines; a failed write is logged: at
 * debug level when the database is busy (another process holds its lock, as an admin's
 * backup may), else as a warning.
 */
export function historyWriter(history: BootHistory, logger: Logger): (event: WatchEvent) => void {
  return (event) => {
    if (event.mac === null || !HISTORY_STAGES.has(event.stage)) return;
    try {
      history.record(event.mac, event.stage, event.detail, event.ip, event.time);
    } catch (e) {
      // The history is a record of what happened, never a reason for a boot to fail.
      if (isBusy(e)) {
        logger.debug("history", "history line not written: database busy", { mac: event.mac });
      } else logger.warn("history", "history line not written", { mac: event.mac, error: e });
    }
  };
}
