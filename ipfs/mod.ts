/**
 * IPFS content for Astral Boot: what main.ts needs to serve, prefetch and export a `ref`.
 *
 * ```ts
 * const store = new IpfsStore({ ref, gateways, timeoutMs, cacheDir: `${dataDir}/cache`, logger });
 * await prefetch(store, { onProgress: progressPrinter() }); // astralboot fetch
 * await exportTree(store, dir); // astralboot export DIR
 * ```
 *
 * @module
 */

export { IpfsContentError, IpfsStore, type IpfsStoreOptions } from "./store.ts";
export {
  type ExportResult,
  exportTree,
  prefetch,
  type PrefetchResult,
  type Progress,
  progressPrinter,
} from "./commands.ts";
export { GatewayError } from "./gateway.ts";
export { UnsupportedCidError } from "./verify.ts";
export type { GcResult } from "./cache.ts";
