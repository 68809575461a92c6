/**
 * The TFTP open handler of `serve`: names mapped into the tree (`tftp/…`), or, with the boot
 * services, GRUB's configs rendered for the asking machine and OS images (`boot/tftp_boot.ts`).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { ContentError, type ContentStore } from "../content/store.ts";
import type { TftpOpen, TftpOpenResult } from "../protocols/tftp/server.ts";
import { tftpPathToTree } from "../protocols/tftp/paths.ts";
import { canonicalAddress } from "../net/ipv6.ts";
import { BootRequestError } from "../boot/errors.ts";
import type { Script } from "../boot/scripts.ts";
import type { TftpBoot } from "../boot/tftp_boot.ts";
import { TemplateNotFoundError, TemplateRenderError } from "../boot/templates.ts";

/** What the handler needs to answer more than the tree's files. */
export interface TftpBootHooks {
  boot: TftpBoot;
  /** Told of every config rendered (the live feed and the machine's history). */
  onScript?: (script: Script, clientIp: string) => void;
  logger: Logger;
}

const REFUSED: TftpOpenResult = { error: "forbidden", message: "access violation" };

/** A refusal of the boot policy as a TFTP error; GRUB prints its message. */
function refusal(e: BootRequestError | TemplateNotFoundError): TftpOpenResult {
  return { error: e.status === 404 ? "not-found" : "forbidden", message: e.message };
}

/** The text of a rendered config as a TFTP file. */
function textFile(text: string): TftpOpenResult {
  const bytes = new TextEncoder().encode(text);
  return {
    size: bytes.length,
    stream: new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    }),
  };
}

/** The TFTP open handler over `store`; see the module doc. */
export function tftpOpener(store: ContentStore, hooks?: TftpBootHooks): TftpOpen {
  return async (filename, client) => {
    let path: string | null = null;
    if (!hooks) path = tftpPathToTree(filename);
    else {
      const ip = canonicalAddress(client.address);
      try {
        const answer = await hooks.boot.answer(filename, ip);
        if (answer?.kind === "script") {
          hooks.onScript?.(answer.script, ip);
          return textFile(answer.script.text);
        }
        path = answer?.path ?? null;
      } catch (e) {
        if (e instanceof BootRequestError || e instanceof TemplateNotFoundError) return refusal(e);
        if (e instanceof ContentError) return { error: e.code, message: e.message };
        if (!(e instanceof TemplateRenderError)) throw e;
        hooks.logger.warn("tftp", "template error", { file: filename, client: ip, error: e });
        return { error: "unavailable", message: `template error: ${e.message}` };
      }
    }
    if (path === null) return REFUSED;
    try {
      // As HTTP does (http/files.ts): a small file whole from memory, else a stat asked anew
      // for a big one, so that the size told (tsize) is that of the file then opened.
      const whole = store.file ? await store.file(path) : null;
      const entry = whole?.entry ?? await store.stat(path);
      if (!entry || entry.kind !== "file") return { error: "not-found", message: "file not found" };
      return { size: entry.size, stream: await store.read(path) };
    } catch (e) {
      if (e instanceof ContentError) return { error: e.code, message: e.message };
      throw e;
    }
  };
}
