/**
 * Something about the boot tree being served, found out in the background (an IPFS tree may take
 * a while to answer, and the servers need not wait for it): unknown until the lookup of the tree
 * now served has answered. A reload to another tree forgets the answer about the one before at
 * once, so nothing acts on what the old tree held while the new one is being looked at.
 *
 * @module
 */
import type { ContentStore } from "../content/store.ts";

/** The newest answer of `lookup` about the tree served; see the module doc. */
export class TreeFact<T> {
  #store: ContentStore | undefined;
  #value: T | undefined;

  constructor(readonly lookup: (store: ContentStore) => Promise<T>) {}

  /** What the lookup said of the tree now served; undefined until it answered, or if it failed. */
  get value(): T | undefined {
    return this.#value;
  }

  /**
   * `store` is served from now on: forgets the answer about the tree before and looks at this one.
   * Resolves with the answer, rejects with the lookup's error.
   */
  async check(store: ContentStore): Promise<T> {
    this.#store = store;
    this.#value = undefined;
    const answer = await this.lookup(store);
    // A lookup of a tree replaced meanwhile says nothing about the one served now.
    if (this.#store === store) this.#value = answer;
    return answer;
  }
}
