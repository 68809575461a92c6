import assert from "node:assert/strict";
import {
  blksizeForMtu,
  MAX_WINDOW_BYTES,
  negotiateOptions,
  type NegotiationLimits,
} from "./options.ts";

const LIMITS: NegotiationLimits = { maxBlksize: 1468, maxWindowsize: 64, size: 3000 };

Deno.test("negotiateOptions answers each option by its RFC", async (t) => {
  const cases: {
    name: string;
    request: [string, string][];
    limits?: Partial<NegotiationLimits>;
    oack: [string, string][];
    blksize?: number;
    windowsize?: number;
    timeoutMs?: number | null;
    ignored?: string[];
  }[] = [
    { name: "no options: plain RFC 1350", request: [], oack: [], blksize: 512, windowsize: 1 },
    {
      name: "OVMF's request: tsize, blksize 1468, windowsize 4",
      request: [["tsize", "0"], ["blksize", "1468"], ["windowsize", "4"]],
      oack: [["tsize", "3000"], ["blksize", "1468"], ["windowsize", "4"]],
      blksize: 1468,
      windowsize: 4,
    },
    {
      name: "blksize above the server cap is lowered (RFC 2348 allows a smaller answer)",
      request: [["blksize", "8192"]],
      oack: [["blksize", "1468"]],
      blksize: 1468,
    },
    {
      name: "blksize above 65464 is treated as 'largest possible'",
      request: [["blksize", "65535"]],
      limits: { maxBlksize: 65464 },
      oack: [["blksize", "65464"]],
      blksize: 65464,
    },
    {
      name: "absurd blksize with 30 digits is capped, not overflowed",
      request: [["blksize", "9".repeat(30)]],
      oack: [["blksize", "1468"]],
      blksize: 1468,
    },
    {
      name: "blksize 8 is the RFC minimum",
      request: [["blksize", "8"]],
      oack: [["blksize", "8"]],
      blksize: 8,
    },
    {
      name: "blksize below 8 is left out of the OACK",
      request: [["blksize", "7"]],
      oack: [],
      blksize: 512,
      ignored: ["blksize"],
    },
    {
      name: "non-decimal values are left out",
      request: [["blksize", "0x400"], ["windowsize", "-4"], ["timeout", " 5"], ["tsize", ""]],
      oack: [],
      blksize: 512,
      windowsize: 1,
      timeoutMs: null,
      ignored: ["blksize", "windowsize", "timeout", "tsize"],
    },
    {
      name: "timeout 1-255 is echoed and becomes the retransmission ceiling",
      request: [["timeout", "6"]],
      oack: [["timeout", "6"]],
      timeoutMs: 6000,
    },
    {
      name: "timeout 0 is left out (an error 8 would abort the boot)",
      request: [["timeout", "0"]],
      oack: [],
      timeoutMs: null,
      ignored: ["timeout"],
    },
    {
      name: "timeout 256 is left out",
      request: [["timeout", "256"]],
      oack: [],
      ignored: ["timeout"],
    },
    {
      name: "windowsize above the server cap is lowered (RFC 7440 §3)",
      request: [["windowsize", "65535"]],
      oack: [["windowsize", "64"]],
      windowsize: 64,
    },
    {
      name: "windowsize 0 is left out",
      request: [["windowsize", "0"]],
      oack: [],
      windowsize: 1,
      ignored: ["windowsize"],
    },
    {
      name: "tsize is left out when the size is not known (netascii)",
      request: [["tsize", "0"], ["blksize", "1024"]],
      limits: { size: null },
      oack: [["blksize", "1024"]],
      blksize: 1024,
      ignored: ["tsize"],
    },
    {
      name: "tsize of an empty file is 0",
      request: [["tsize", "0"]],
      limits: { size: 0 },
      oack: [["tsize", "0"]],
    },
    {
      name: "unknown options are ignored, never an error (RFC 2347 §3)",
      request: [["multicast", ""], ["rollover", "0"], ["utimeout", "500000"]],
      oack: [],
      ignored: ["multicast", "rollover", "utimeout"],
    },
    {
      name: "option names that are Object properties are just unknown options",
      request: [["constructor", "1"], ["__proto__", "1"], ["tostring", "1"], [
        "hasownproperty",
        "1",
      ]],
      oack: [],
      ignored: ["constructor", "__proto__", "tostring", "hasownproperty"],
    },
    {
      // The window then to MAX_WINDOW_BYTES (see the test below).
      name: "server caps out of range are clamped to the RFC bounds",
      request: [["blksize", "100000"], ["windowsize", "100000"]],
      limits: { maxBlksize: 1e9, maxWindowsize: 1e9 },
      oack: [["blksize", "65464"], ["windowsize", "8"]],
      blksize: 65464,
      windowsize: 8,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const got = negotiateOptions(new Map(c.request), { ...LIMITS, ...c.limits });
      assert.deepEqual([...got.oack], c.oack);
      if (c.blksize !== undefined) assert.equal(got.blksize, c.blksize);
      if (c.windowsize !== undefined) assert.equal(got.windowsize, c.windowsize);
      if (c.timeoutMs !== undefined) assert.equal(got.timeoutMs, c.timeoutMs);
      assert.deepEqual([...got.ignored.keys()], c.ignored ?? []);
    });
  }
});

Deno.test("blksizeForMtu subtracts IPv4, UDP and TFTP headers", async (t) => {
  const cases: [number, number][] = [[1500, 1468], [9000, 8968], [576, 544], [100, 512], [
    1e6,
    65464,
  ]];
  for (const [mtu, want] of cases) {
    await t.step(`MTU ${mtu} → ${want}`, () => assert.equal(blksizeForMtu(mtu), want));
  }
});

Deno.test("a window never holds more than MAX_WINDOW_BYTES, whatever order the options come in", async (t) => {
  const limits: NegotiationLimits = { maxBlksize: 65464, maxWindowsize: 65535, size: 1 };
  const cases: [string, [string, string][], number, number][] = [
    ["huge blocks, huge window", [["blksize", "65464"], ["windowsize", "65535"]], 65464, 8],
    ["window named first", [["windowsize", "65535"], ["blksize", "65464"]], 65464, 8],
    ["jumbo frames, window 64", [["blksize", "8968"], ["windowsize", "64"]], 8968, 58],
    ["Ethernet frames, window 64: as asked", [["blksize", "1468"], ["windowsize", "64"]], 1468, 64],
    ["no blksize: 512-byte blocks", [["windowsize", "65535"]], 512, 1016],
  ];
  for (const [what, request, blksize, windowsize] of cases) {
    await t.step(what, () => {
      const got = negotiateOptions(new Map(request), limits);
      assert.equal(got.blksize, blksize);
      assert.equal(got.windowsize, windowsize);
      assert.equal(got.oack.get("windowsize"), String(windowsize));
      assert.deepEqual([...got.oack.keys()], request.map(([k]) => k));
      assert.ok(windowsize * (blksize + 4) <= MAX_WINDOW_BYTES);
    });
  }
});
