/**
 * The contacts DHCP ACKs record in the machine registry (`MachineRegistry.seen`, and `report`
 * for what the request said of the machine), written in one transaction per burst instead of
 * one each.
 *
 * ACKs leave in bursts, one per group commit of the lease table (`state/lease_table.ts`), and
 * a transaction of its own cost each contact more than the rest of its ACK's bookkeeping. The
 * contacts of one burst are queued and written together once the burst's callbacks have run
 * (a microtask later); on a busy database they are given up, as `seen` gives them up one by one.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import type { Mac } from "../net/mac.ts";
import { isBusy } from "../state/db.ts";
import type { InventoryReport } from "../state/inventory.ts";
import type { MachineRegistry } from "../state/machines.ts";

/**
 * A function that records `mac` at `ip` (and its `inventory`, when given) in `registry()` (read when the burst is written: a
 * reload may have replaced it), in bursts on `db`, the registry's best-effort handle. A failure
 * is logged, never thrown: bookkeeping never costs a machine its answer.
 */
export function contactRecorder(
  registry: () => MachineRegistry,
  db: DatabaseSync,
  logger: Logger,
): (mac: Mac, ip: string, inventory?: InventoryReport) => void {
  let queued: [Mac, string, InventoryReport | undefined][] = [];
  const write = () => {
    const burst = queued;
    queued = [];
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      if (!isBusy(e)) logger.warn("dhcp", "contacts not recorded", { error: e });
      return;
    }
    try {
      const r = registry();
      // DHCP's reports carry no `uuid` (option 97 goes in `dhcp_uuid`), so `report` binds
      // nothing and writes only on the best-effort handle, inside this transaction.
      for (const [mac, ip, inventory] of burst) {
        r.seen(mac, ip);
        if (inventory) r.report(mac, inventory);
      }
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      logger.warn("dhcp", "contacts not recorded", { error: e });
    }
  };
  return (mac, ip, inventory) => {
    if (queued.push([mac, ip, inventory]) === 1) queueMicrotask(write);
  };
}
