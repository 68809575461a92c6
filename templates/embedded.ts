/**
 * The default templates, compiled into the program: text imports are part of the module
 * graph, so `deno compile` embeds them without `--include` and nothing is read from the
 * source tree at run time. Add a new `.vto` here too; `templates_test.ts` checks the list.
 *
 * @module
 */
import chain from "./chain.vto" with { type: "text" };
import menu from "./menu.vto" with { type: "text" };
import start from "./start.vto" with { type: "text" };

/** Default templates by file name. */
export const EMBEDDED_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  "chain.vto": chain,
  "menu.vto": menu,
  "start.vto": start,
});
