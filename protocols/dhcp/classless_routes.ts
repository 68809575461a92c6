/**
 * Classless static routes (option 121, RFC 3442; Microsoft's option 249 has the same format):
 * each route is the prefix length, the significant bytes of the destination, and the router.
 *
 * @module
 */
import { ipv4ToBytes, Subnet } from "../../net/ipv4.ts";

/** One route: a destination network and the router that reaches it. */
export interface ClasslessRoute {
  /** `10.1.0.0/16`; `0.0.0.0/0` is the default route. */
  destination: string;
  router: string;
}

/** The destination as a subnet; RangeError when it is not a CIDR or has host bits set. */
export function routeDestination(cidr: string): Subnet {
  const subnet = Subnet.parse(cidr);
  const written = cidr.trim().split("/")[0]!;
  if (subnet.network !== written) {
    // RFC 3442 sends only the significant bytes: host bits would be lost without a word.
    throw new RangeError(
      `${JSON.stringify(cidr)} has host bits set; did you mean "${subnet.toString()}"?`,
    );
  }
  return subnet;
}

/** Encodes routes in order (RFC 3442 §3); RangeError on a bad destination or router. */
export function encodeClasslessRoutes(routes: readonly ClasslessRoute[]): Uint8Array {
  const out: number[] = [];
  for (const r of routes) {
    const dest = routeDestination(r.destination);
    const significant = Math.ceil(dest.prefix / 8);
    out.push(dest.prefix, ...ipv4ToBytes(dest.network).subarray(0, significant));
    out.push(...ipv4ToBytes(r.router));
  }
  return Uint8Array.from(out);
}
