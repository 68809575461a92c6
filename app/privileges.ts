/**
 * What `serve` gives up when it starts. One executable holds every command, so it is compiled
 * with `--allow-run` for `astralboot lab` (which starts QEMU, tcpdump, ip); the servers never
 * start a process, and a server that cannot is one way less for a bug or a crafted request to
 * run something on the host.
 *
 * @module
 */

/** Revokes the permission to start processes, for the rest of this process. */
export function dropServePermissions(): void {
  Deno.permissions.revokeSync({ name: "run" });
}
