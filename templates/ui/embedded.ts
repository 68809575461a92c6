/**
 * The dashboard's files, compiled into the program: text imports are part of the module
 * graph, so `deno compile` embeds them and nothing is read from the source tree at run time.
 *
 * @module
 */
import html from "./dashboard.html" with { type: "text" };
import js from "./dashboard.js" with { type: "text" };
import css from "./dashboard.css" with { type: "text" };

/** One file served under `/ui`. */
export interface UiFile {
  body: string;
  type: string;
}

/** The dashboard's files by name. */
export const UI_FILES: Readonly<
  Record<"dashboard.html" | "dashboard.js" | "dashboard.css", UiFile>
> = Object.freeze({
  "dashboard.html": { body: html, type: "text/html; charset=utf-8" },
  "dashboard.js": { body: js, type: "text/javascript; charset=utf-8" },
  "dashboard.css": { body: css, type: "text/css; charset=utf-8" },
});
