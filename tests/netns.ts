/** Test code reaches the namespace helpers here; they live in lab/ because `astralboot lab` uses them. */
export * from "../lab/netns.ts";

/**
 * argv that runs `script` (sh, with `args` as $1…) in a mount namespace of its own, so that the
 * mounts it makes are seen by it and its children alone and vanish with them.
 */
export function inPrivateMounts(script: string, args: string[]): string[] {
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", ...args];
}
