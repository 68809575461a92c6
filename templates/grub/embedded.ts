/**
 * The default GRUB configs, compiled into the program as text imports (see
 * `templates/embedded.ts`). Add a new `.vto` here too; `boot/templates_test.ts` checks the list.
 *
 * @module
 */
import start from "./grub-start.vto" with { type: "text" };
import menu from "./grub-menu.vto" with { type: "text" };
import local from "./grub-local.vto" with { type: "text" };

/** Default GRUB templates by file name. */
export const GRUB_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  "grub-start.vto": start,
  "grub-menu.vto": menu,
  "grub-local.vto": local,
});
