/**
 * What a machine gets from `/boot.ipxe`, and the OS menu it sees when nothing is decided.
 *
 * Pure functions: `scripts.ts` gathers the catalog and the machine, and renders the menu with
 * the `menu` template or the decided OS with its start script.
 *
 * @module
 */
import { type Mac, macHyphens } from "../net/mac.ts";
import type { CatalogProblem, OsEntry } from "./catalog.ts";

/** One menu line: the iPXE label (the OS folder name) and its text. */
export interface MenuItem {
  name: string;
  title: string;
}

/** What `templates/menu.vto` receives as `menu`. */
export interface MenuModel {
  items: MenuItem[];
  /** OS booted after the timeout; "" for none (the menu waits). */
  default: string;
  /** `choose --timeout` in milliseconds; 0 waits for ever. */
  timeout_ms: number;
  /** GRUB's `timeout`: the same in whole seconds, -1 waiting for ever (0 would not wait). */
  grub_timeout: number;
  /** Lines shown as `item --gap`: why the menu is empty, which OS was left out. */
  notices: string[];
  /** The MAC as it goes into `/choose/<os>/<mac>` URLs, or the iPXE setting when unknown. */
  mac_url: string;
}

/** Inputs of {@linkcode buildMenu}. */
export interface MenuInput {
  entries: readonly OsEntry[];
  problems?: readonly CatalogProblem[];
  /** `[boot] default`; ignored (with a notice) when it names no OS of the tree. */
  defaultOs?: string;
  /** `[boot] menu_timeout` in seconds. */
  timeoutSeconds: number;
  /** The asking machine's MAC, or null when the request did not say. */
  mac: Mac | null;
  /** Whether the store has a `boot/` folder at all (the embedded default has none). */
  hasBootTree: boolean;
}

/** iPXE's own spelling of the booting interface's MAC, for URLs built without one. */
export const IPXE_MAC_SETTING = "${netX/mac:hexhyp}";

/** A MAC as a URL segment: hyphens, as iPXE's `:hexhyp` prints it; iPXE's setting when unknown. */
export function macForUrl(mac: Mac | null): string {
  return mac === null ? IPXE_MAC_SETTING : macHyphens(mac);
}

// iPXE would expand "${...}" inside item text; a title is text, not a setting reference.
function menuText(text: string): string {
  return text.replaceAll("${", "$ {");
}

/** The menu for a machine: items in catalog order, default and notices. */
export function buildMenu(input: MenuInput): MenuModel {
  // Each class is an item of its own after its OS (`debian/k8s-node`): its label is the
  // path under /choose/, so the menu template needs nothing new.
  const items = input.entries.flatMap((e) => [
    { name: e.name, title: menuText(e.title) },
    ...e.classes.map((c) => ({
      name: `${e.name}/${c.name}`,
      title: menuText(`${e.title}: ${c.title}`),
    })),
  ]);
  const notices: string[] = [];
  if (items.length === 0) {
    notices.push(
      input.hasBootTree
        ? "No operating systems under boot/ (see the server log)"
        : "No boot tree configured: use -l DIR or ref",
    );
  }
  const skipped = [...new Set((input.problems ?? []).filter((p) => p.skipped).map((p) => p.os))];
  for (const os of skipped) notices.push(menuText(`${os}: left out, see the server log`));
  let def = "";
  if (input.defaultOs) {
    if (items.some((i) => i.name === input.defaultOs)) def = input.defaultOs;
    else notices.push(menuText(`Default OS ${input.defaultOs} is not in the tree`));
  }
  const timeoutMs = def ? Math.max(0, Math.round(input.timeoutSeconds * 1000)) : 0;
  return {
    items,
    default: def,
    timeout_ms: timeoutMs,
    grub_timeout: timeoutMs === 0 ? -1 : Math.ceil(timeoutMs / 1000),
    notices,
    mac_url: macForUrl(input.mac),
  };
}

/** Where `/boot.ipxe` sends a machine. */
export type EntryDecision =
  | { kind: "os"; os: string; reason: "configured" | "chosen at the menu" }
  | { kind: "menu"; note?: string };

/**
 * Decides the entry script of a machine: its OS (pinned by `[[machine]] os`, or chosen at the
 * menu) when the tree has it, else the menu; an OS that left the tree gives the menu with a
 * note for the log.
 */
export function decideEntry(input: {
  os: string | null;
  pinned: boolean;
  known: ReadonlySet<string>;
}): EntryDecision {
  if (!input.os) return { kind: "menu" };
  if (input.known.has(input.os)) {
    return { kind: "os", os: input.os, reason: input.pinned ? "configured" : "chosen at the menu" };
  }
  return {
    kind: "menu",
    note: `${input.pinned ? "configured" : "chosen"} os ${input.os} is not in the tree`,
  };
}
