/** Test code reaches the namespace helpers here; they live in lab/ because `astralboot lab` uses them. */
export * from "../lab/netns.ts";
