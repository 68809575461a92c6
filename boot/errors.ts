/**
 * The one error a boot decision throws when a request cannot be served as asked: an unknown
 * OS, class or template, a machine that cannot be found. `status` is what HTTP answers.
 *
 * @module
 */

/** A request the boot policy refuses; `status` is the HTTP status to answer with. */
export class BootRequestError extends Error {
  constructor(message: string, readonly status: 400 | 403 | 404 | 409, options?: ErrorOptions) {
    super(message, options);
    this.name = "BootRequestError";
  }
}
