/**
 * Astral Boot: the program's entry point. Everything it does starts in `app/main.ts`.
 *
 * @module
 */
import { main } from "./app/main.ts";

export { main, VERSION } from "./app/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
