/**
 * The runtime's ceiling for the 1 KiB row of the HTTP bench: a bare `Deno.serve` that answers
 * every request with one file held in memory and the same headers our fast lane sends
 * (`http/file_routes.ts`: Content-Type, Accept-Ranges, ETag, Last-Modified; Deno adds Date and
 * Content-Length), and nothing else: no router, no access log, no events. What stands between
 * it and nginx is Deno's own cost per request; what stands between it and us is ours.
 *
 * `deno run --allow-net --allow-read tests/bench/http_floor.ts ADDRESS PORT FILE`
 *
 * @module
 */
const [address, port, file] = Deno.args;
if (!address || !port || !file) {
  console.error("usage: http_floor.ts ADDRESS PORT FILE");
  Deno.exit(2);
}
const bytes = await Deno.readFile(file);
const mtime = (await Deno.stat(file)).mtime ?? new Date(0);
const headers: [string, string][] = [
  ["Content-Type", "application/octet-stream"],
  ["Accept-Ranges", "bytes"],
  ["ETag", `"${bytes.length.toString(16)}-${mtime.getTime().toString(16)}"`],
  ["Last-Modified", mtime.toUTCString()],
];
// Headers added to the made response, as `http/context.ts` responseOf does: the cheapest way
// the runtime has (a list given to the constructor costs several times as much).
Deno.serve(
  { hostname: address, port: Number(port), onListen: () => console.log("listening") },
  () => {
    const response = new Response(bytes);
    for (const [name, value] of headers) response.headers.append(name, value);
    return response;
  },
);
