/**
 * A/B of the HTTP rows: this checkout and another one (an older build) beside nginx, in one
 * namespace, the cases alternating between the three within each run, so that a change can be
 * judged on a machine shared with other work. Prints each side's medians, the ratios new/old
 * and each/nginx, and the load average before and after.
 *
 *   git archive <rev> | tar -x -C /tmp/old    # the old build, outside any worktree
 *   deno run --unstable-net -A tests/bench/http_ab.ts --old /tmp/old [--runs 5] [--seconds 4] [--quick]
 *
 * @module
 */
import { join } from "node:path";
import { runCleanups } from "./common.ts";
import {
  addLink,
  BENCH_LINK,
  benchSetup,
  type CaseName,
  checkTarget,
  type Figures,
  measure,
  ourPaths,
  startOurs,
  startReference,
  type Target,
} from "./http.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function main(): Promise<void> {
  const old = arg("--old");
  if (!old) throw new Error("--old DIR: a checkout of the build to compare with");
  const quick = Deno.args.includes("--quick");
  const o = {
    quick,
    print: (l: string) => console.log(l),
    runs: Number(arg("--runs") ?? (quick ? 1 : 3)),
    seconds: Number(arg("--seconds") ?? (quick ? 2 : 4)),
  };
  console.log(`load average before: ${loadAverage()}`);
  await using setup = await benchSetup(o);
  const sides: Target[] = [];
  // Each side on its own boot interface: DHCP and TFTP ports cannot be shared.
  const links = [BENCH_LINK, { name: "bench2", address: "10.251.1.1" }] as const;
  await addLink(setup.ns, links[1]);
  for (
    const [name, root, link] of [["new", undefined, links[0]], ["old", old, links[1]]] as const
  ) {
    const port = 8080;
    const process = await startOurs(setup.ns, join(setup.dir, name), setup.tree, {
      port,
      root,
      link,
    });
    const t = {
      name,
      base: `http://${link.address}:${port}`,
      paths: ourPaths(),
      process,
      withChildren: false,
    };
    await checkTarget(setup, t);
    sides.push(t);
  }
  sides.push(await startReference(setup));
  const figures = await measure(setup.ns, setup.dir, sides, o);
  const [n, b, ng] = figures as [Figures, Figures, Figures];
  const cases: CaseName[] = ["small", "big", "known", "refused"];
  const f = (x: number | undefined) => x === undefined ? "-" : x.toFixed(x < 10 ? 2 : 0);
  console.log(
    "\ncase      new            old            nginx          new/old  new/nginx old/nginx  (rate; µs CPU per req or MB)",
  );
  for (const c of cases) {
    const ref = ng.cases[c === "known" || c === "refused" ? "small" : c];
    const [x, y] = [n.cases[c], b.cases[c]];
    console.log(
      `${c.padEnd(9)} ${`${f(x?.rate)} (${f(x?.cpuMicros)})`.padEnd(14)} ` +
        `${`${f(y?.rate)} (${f(y?.cpuMicros)})`.padEnd(14)} ` +
        `${`${f(ref?.rate)} (${f(ref?.cpuMicros)})`.padEnd(14)} ` +
        `${f(x && y ? x.rate / y.rate : undefined).padStart(7)}  ` +
        `${f(x && ref ? x.rate / ref.rate : undefined).padStart(8)}  ` +
        `${f(y && ref ? y.rate / ref.rate : undefined).padStart(8)}  ` +
        `cpu-ratio nginx/new ${f(x && ref ? ref.cpuMicros / x.cpuMicros : undefined)}`,
    );
  }
  console.log(
    `peak RSS MiB: new ${f(n.memoryMiB)}, old ${f(b.memoryMiB)}, nginx ${f(ng.memoryMiB)}`,
  );
  console.log(`load average after: ${loadAverage()}`);
}

if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => runCleanups().finally(() => Deno.exit(130)));
  try {
    await main();
  } finally {
    await runCleanups();
  }
}
