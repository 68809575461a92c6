/**
 * Helpers shared by the DHCP codec tests (and usable by tests of code built on the codec).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DhcpOptions } from "./options.ts";
import type { DhcpPacket } from "./packet.ts";

/** Asserts every header field and every option (code, order and bytes) are equal. */
export function assertSamePacket(a: DhcpPacket, b: DhcpPacket): void {
  const { options: oa, ...ha } = a;
  const { options: ob, ...hb } = b;
  assert.deepEqual(ha, hb);
  assert.deepEqual([...oa.entries()], [...ob.entries()]);
}

/** A client BOOTREQUEST from 52:54:00:ab:c0:01 with the given options; `over` replaces fields. */
export function testRequest(
  options: DhcpOptions = new DhcpOptions(),
  over: Partial<DhcpPacket> = {},
): DhcpPacket {
  return {
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0xdeadbeef,
    secs: 0,
    flags: 0,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: Uint8Array.of(0x52, 0x54, 0, 0xab, 0xc0, 1),
    sname: "",
    file: "",
    options,
    ...over,
  };
}
