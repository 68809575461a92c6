/**
 * Debian's atftpd, the reference TFTP server that implements windowsize (RFC 7440). Its package
 * conflicts with tftpd-hpa, which the tests need installed, so it is never installed: the deb is
 * fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the cache folder, once.
 *
 * @module
 */
import { join } from "node:path";
import { run } from "../netns.ts";

/**
 * The cache folder: `$ASTRALBOOT_CACHE/atftpd` when set, else `.cache/atftpd` in this checkout
 * (as the lab's fixtures).
 */
export function atftpdCacheDir(): string {
  const env = Deno.env.get("ASTRALBOOT_CACHE");
  if (env) return join(env, "atftpd");
  return new URL("../../.cache/atftpd", import.meta.url).pathname;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * The path of the unpacked `atftpd` binary, downloading and unpacking the package first when
 * the cache has none. Idempotent: a finished unpack is reused, a broken one is done again.
 */
export async function atftpdBinary(
  cacheDir = atftpdCacheDir(),
  print: (line: string) => void = () => {},
): Promise<string> {
  const root = join(cacheDir, "root");
  const bin = join(root, "usr/sbin/atftpd");
  if (await exists(bin)) return bin;
  const debs = join(cacheDir, "debs");
  await Deno.mkdir(debs, { recursive: true });
  let deb = (await listDebs(debs))[0];
  if (!deb) {
    print("  tftp: fetching atftpd (apt-get download) into " + debs);
    // apt-get download writes into the working directory.
    await run(["sh", "-c", 'cd "$1" && apt-get download -q atftpd', "sh", debs], {
      timeoutMs: 120_000,
    });
    deb = (await listDebs(debs))[0];
    if (!deb) throw new Error(`apt-get download atftpd left no .deb in ${debs}`);
  }
  // Unpacked beside, then renamed: an interrupted unpack never looks finished.
  const partial = `${root}.partial`;
  await Deno.remove(partial, { recursive: true }).catch(() => {});
  await run(["dpkg-deb", "-x", join(debs, deb), partial], { timeoutMs: 60_000 });
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.rename(partial, root);
  if (!(await exists(bin))) throw new Error(`${deb} holds no usr/sbin/atftpd`);
  return bin;
}

async function listDebs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^atftpd_.*\.deb$/.test(e.name)) out.push(e.name);
  }
  return out.sort();
}

if (import.meta.main) console.log(await atftpdBinary(undefined, (l) => console.error(l.trim())));
