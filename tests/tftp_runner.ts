/**
 * Serves a folder over TFTP with our server; tests and the benchmark run it inside a network
 * namespace. Logs JSON lines on stdout (the "listening" line tells the port); every real path
 * opened is logged as `opened`, so tests can prove nothing outside the root was read.
 *
 * ```
 * deno run --unstable-net -A tests/tftp_runner.ts --address 10.77.0.1 --port 69 --dir DIR \
 *   [--max-blksize 1468] [--max-windowsize 64] [--max-per-client 4] [--interface eth0] \
 *   [--log-level info]
 * ```
 *
 * With `--interface`, every socket is also bound to that interface (`listenInterface`, as
 * `astralboot serve` does); without it, by address only (`listenUdp`).
 *
 * Stops on SIGTERM or SIGINT.
 *
 * @module
 */
import { createLogger, type Level } from "../log.ts";
import { listenInterface } from "../protocols/tftp/interface_socket.ts";
import { startTftpServer } from "../protocols/tftp/server.ts";
import { folderOpen } from "./tftp_folder.ts";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

if (import.meta.main) {
  const args = Deno.args;
  const address = flag(args, "address");
  const dir = flag(args, "dir");
  if (!address || !dir) {
    console.error("usage: tftp_runner.ts --address IP --dir DIR [--port N] ...");
    Deno.exit(2);
  }
  const logger = createLogger({
    format: "json",
    level: (flag(args, "log-level") ?? "info") as Level,
  });
  const maxBlksize = flag(args, "max-blksize");
  const maxWindowsize = flag(args, "max-windowsize");
  const maxPerClient = flag(args, "max-per-client");
  const iface = flag(args, "interface");
  const server = await startTftpServer({
    address,
    port: Number(flag(args, "port") ?? 69),
    open: await folderOpen(dir, (real) => logger.info("runner", "opened", { path: real })),
    maxBlksize: maxBlksize ? Number(maxBlksize) : undefined,
    maxWindowsize: maxWindowsize ? Number(maxWindowsize) : undefined,
    maxPerClient: maxPerClient ? Number(maxPerClient) : undefined,
    listen: iface ? listenInterface(iface, logger) : undefined,
    logger,
  });
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
