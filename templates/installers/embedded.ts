/**
 * The default installer templates (preseed, cloud-config, Ignition, kickstart) and the
 * local-disk boot script, compiled into the program through text imports like
 * `templates/embedded.ts`. Add a new `.vto` here too; `installers_test.ts` checks the list.
 *
 * @module
 */
import cloudConfig from "./cloud-config.vto" with { type: "text" };
import ignition from "./ignition.vto" with { type: "text" };
import kickstart from "./kickstart.vto" with { type: "text" };
import local from "./local.vto" with { type: "text" };
import preseed from "./preseed.vto" with { type: "text" };

/** Installer templates by file name, looked up like the other defaults. */
export const INSTALLER_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  "cloud-config.vto": cloudConfig,
  "ignition.vto": ignition,
  "kickstart.vto": kickstart,
  "local.vto": local,
  "preseed.vto": preseed,
});
