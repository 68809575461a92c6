/**
 * The contacts DHCP ACKs record in the machine registry (`MachineRegistry.seen`, and `report`
 * for what the request said of the machine).
 *
 * The server's registry queues both on its bookkeeping (`state/bookkeeping.ts`), which writes a
 * batch in one transaction off the request path, and keeps each machine's newest contact and
 * report in memory meanwhile; so a contact costs the ACK no database work here. Before the
 * queue, this module wrapped each burst of ACKs in a transaction of its own; with the queue that
 * transaction held nothing, and its `BEGIN IMMEDIATE`/`COMMIT` cost ~1.7 % of the server's CPU
 * at 8 000 exchanges a second (measured).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Mac } from "../net/mac.ts";
import type { InventoryReport } from "../state/inventory.ts";
import type { MachineRegistry } from "../state/machines.ts";

/**
 * A function that records `mac` at `ip` (and its `inventory`, when given) in `registry()`, read
 * at each call: a reload may have replaced it. A failure is logged, never thrown: bookkeeping
 * never costs a machine its answer.
 */
export function contactRecorder(
  registry: () => MachineRegistry,
  logger: Logger,
): (mac: Mac, ip: string, inventory?: InventoryReport) => void {
  return (mac, ip, inventory) => {
    try {
      const r = registry();
      // DHCP's reports carry no `uuid` (option 97 goes in `dhcp_uuid`): `report` binds nothing.
      r.seen(mac, ip);
      if (inventory) r.report(mac, inventory);
    } catch (e) {
      logger.warn("dhcp", "contact not recorded", { mac, error: e });
    }
  };
}
