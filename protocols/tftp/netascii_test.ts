import assert from "node:assert/strict";
import { netasciiStream, toNetascii } from "./netascii.ts";

const b = (s: string) => new TextEncoder().encode(s);

Deno.test("toNetascii converts LF and bare CR (RFC 764)", async (t) => {
  const cases: [string, string, string][] = [
    ["no line ends", "abc", "abc"],
    ["LF", "a\nb", "a\r\nb"],
    ["bare CR", "a\rb", "a\r\0b"],
    ["CR LF is two conversions, as tftp-hpa reads it", "a\r\nb", "a\r\0\r\nb"],
    ["leading and trailing", "\nx\r", "\r\nx\r\0"],
    ["empty", "", ""],
  ];
  for (const [name, input, want] of cases) {
    await t.step(name, () => assert.deepEqual(toNetascii(b(input)), b(want)));
  }
});

Deno.test("netasciiStream gives the same bytes whatever the chunking", async () => {
  const text = "line one\nline two\r\n\rend\n";
  const whole = toNetascii(b(text));
  for (const size of [1, 2, 3, 7, 100]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < text.length; i += size) chunks.push(b(text.slice(i, i + size)));
    const out = await new Response(
      ReadableStream.from(chunks).pipeThrough(netasciiStream()),
    ).bytes();
    assert.deepEqual(out, whole, `chunk size ${size}`);
  }
});
