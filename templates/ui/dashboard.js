// The Astral Boot dashboard: machines, headline numbers and live boot events.
// Plain browser JavaScript, no build step. Everything from the server is put into the page
// with textContent, never as markup: host names and installer reports come from clients.
// Its data needs the admin token: given once in the address (/ui#token=…, what
// `astralboot token` prints) or typed into the form, kept for this tab only, and sent as an
// Authorization header (never in a URL, which would reach logs and histories).
"use strict";

const TOKEN_KEY = "astralboot-token";

/** Moves a token in the address (/ui#token=…) into this tab's storage; whether there was one. */
function takeTokenFromAddress() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return false;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  // Out of the address bar and the history at once.
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

function authHeaders(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** Shows the token form; `why` says what happened. */
function askForToken(why) {
  $("login-why").textContent = why;
  $("login").hidden = false;
  $("live").textContent = "no token";
  $("live").classList.add("off");
}

/** A fetch of the admin API; a 401 asks for the token and throws. */
async function api(path, init = {}) {
  const sent = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, {
    cache: "no-store",
    ...init,
    headers: authHeaders(init.headers ?? {}),
  });
  if (res.status === 401) {
    // A newer token given meanwhile stays: only the refused one is forgotten.
    if (sessionStorage.getItem(TOKEN_KEY) === sent) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(
        sent
          ? "The server refused that token; give the admin token (astralboot token prints it)."
          : "The server wants the admin token (astralboot token prints it).",
      );
    }
    throw new Error("unauthorized");
  }
  return res;
}

const MAX_EVENTS = 200;
// Each event asks for a fresh overview anyway; the poll only catches what makes no event
// (lease expiry), and keeps the access log quiet. Ages are redrawn locally in between.
const REFRESH_MS = 30000;
const REDRAW_MS = 5000;
const BAD = new Set(["tftp-failed", "http-error", "dhcp-nak", "dhcp-decline"]);
const DONE = new Set(["tftp-done", "kernel", "initrd", "installed", "local-boot", "dhcp-ack"]);

function $(id) {
  return document.getElementById(id);
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds / 60) % 60} min`;
  }
  return `${Math.floor(seconds / 86400)} d ${Math.floor(seconds / 3600) % 24} h`;
}

function ago(ms) {
  if (!ms) return "–";
  return `${duration(Math.max(0, Math.round((Date.now() - ms) / 1000)))} ago`;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

function stageBadge(stage) {
  const kind = BAD.has(stage) ? " bad" : DONE.has(stage) ? " done" : "";
  return el("span", `stage${kind}`, stage);
}

function renderHeadline(o, elapsedSeconds) {
  const h = o.headline;
  $("version").textContent = `v${o.version}`;
  $("h-leases").textContent = h.leases_bound === null ? "n/a" : h.leases_bound;
  $("h-dhcp").textContent = h.dhcp_replies;
  $("h-tftp").textContent = h.tftp_transfers;
  $("h-http").textContent = h.http_requests;
  $("h-bytes").textContent = bytes(h.bytes_served);
  $("h-uptime").textContent = duration(h.uptime_seconds + elapsedSeconds);
}

/**
 * What a machine reported of itself (vendor, product; serial, UUID, firmware): its own word,
 * cleaned by the server, and put here as text like everything else.
 */
function hardwareCell(inv) {
  const td = el("td", "hardware");
  if (!inv) return td;
  td.append(el("span", "", [inv.manufacturer, inv.product].filter(Boolean).join(" ")));
  const uuid = inv.uuid ?? inv.dhcp_uuid;
  const firmware = [inv.platform, inv.buildarch].filter(Boolean).join(" ");
  const detail = [
    inv.serial && `serial ${inv.serial}`,
    uuid && `uuid ${uuid}`,
    firmware,
  ].filter(Boolean).join(" · ");
  if (detail) td.append(el("span", "detail", detail));
  return td;
}

function renderMachines(rows) {
  const body = document.querySelector("#machines tbody");
  const out = [];
  for (const m of rows) {
    const tr = el("tr");
    tr.append(el("td", "mono", m.mac ?? "?"));
    tr.append(el("td", "mono", m.ip ?? ""));
    tr.append(el("td", "", m.hostname ?? ""));
    tr.append(hardwareCell(m.inventory));
    tr.append(el("td", "", [m.os, m.class].filter(Boolean).join(" / ")));
    tr.append(el("td", "", [m.state, m.lease && `lease ${m.lease}`].filter(Boolean).join(", ")));
    const stage = el("td");
    if (m.stage) {
      stage.append(stageBadge(m.stage));
      stage.append(el("span", "detail", m.detail));
    }
    tr.append(stage);
    tr.append(el("td", "", ago(m.last_seen)));
    out.push(tr);
  }
  body.replaceChildren(...out);
  // Said only of an answer: before one (no token yet) nothing is known of the machines.
  $("no-machines").hidden = rows.length > 0;
}

let overview = null;
let fetchedAt = 0;
let refreshing = false;
let again = false;
let scheduled = null;

function redraw() {
  if (!overview) return;
  renderHeadline(overview, Math.round((Date.now() - fetchedAt) / 1000));
  renderMachines(overview.machines);
}

async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    const res = await api("/api/overview");
    if (res.ok) {
      overview = await res.json();
      fetchedAt = Date.now();
      redraw();
    }
  } catch {
    // The server is restarting; the next tick tries again.
  } finally {
    refreshing = false;
    if (again) {
      again = false;
      soon();
    }
  }
}

/** One refresh for a burst of events (a DHCP exchange is two within milliseconds). */
function soon() {
  if (scheduled !== null) return;
  scheduled = setTimeout(() => {
    scheduled = null;
    refresh();
  }, 300);
}

function eventItem(e, fresh) {
  const li = el("li", fresh ? "new" : "");
  li.append(el("span", "muted", clock(e.time)));
  li.append(el("span", "mono", e.mac ?? e.ip ?? "?"));
  li.append(stageBadge(e.stage));
  li.append(el("span", "detail", `${e.ip && e.mac ? `${e.ip} · ` : ""}${e.detail}`));
  return li;
}

function addEvent(e, fresh) {
  const list = $("events");
  list.prepend(eventItem(e, fresh));
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

/** Splits Server-Sent Events text into events: `{ id, data }` for each blank-line-ended block. */
function sseEvents(buffer) {
  const out = [];
  let rest = buffer;
  for (;;) {
    const end = rest.indexOf("\n\n");
    if (end < 0) return { events: out, rest };
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("id: ")) id = Number(line.slice(4));
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) out.push({ id, data: data.join("\n") });
  }
}

/**
 * The live stream, over fetch (EventSource cannot send a header); reconnects after 3 s, ends
 * on a 401 or when `stop` is aborted.
 */
async function followEvents(since, stop) {
  const badge = $("live");
  let last = since;
  while (!stop.aborted) {
    try {
      const res = await api(`/api/events/stream?since=${last}`, {
        headers: { "Last-Event-ID": String(last) },
        signal: stop,
      });
      if (!res.ok || !res.body) throw new Error(`stream: ${res.status}`);
      badge.textContent = "live";
      badge.classList.remove("off");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = sseEvents(buffer + value);
        buffer = parsed.rest;
        for (const e of parsed.events) {
          if (e.id !== null) last = e.id;
          addEvent(JSON.parse(e.data), true);
          soon();
        }
      }
    } catch (e) {
      if (e.message === "unauthorized" || stop.aborted) return;
    }
    badge.textContent = "reconnecting…";
    badge.classList.add("off");
    await new Promise((r) => setTimeout(r, 3000));
  }
}

// Stops the history and stream being followed; null when none is. One at a time: a second
// token (the form, a pasted address) must not open a second stream.
let following = null;

async function startEvents() {
  if (following) return;
  const mine = new AbortController();
  following = mine;
  $("live").textContent = "connecting…";
  let since = 0;
  try {
    const res = await api(`/api/events?since=0`, { signal: mine.signal });
    const page = await res.json();
    $("events").replaceChildren();
    for (const e of page.events.slice(-MAX_EVENTS)) addEvent(e, false);
    since = page.last;
  } catch (e) {
    if (e.message === "unauthorized" || mine.signal.aborted) {
      if (following === mine) following = null;
      return;
    }
    // No history; the stream still brings what comes next.
  }
  await followEvents(since, mine.signal);
  if (following === mine) following = null;
}

function stopEvents() {
  following?.abort();
  following = null;
  $("live").textContent = "paused";
  $("live").classList.add("off");
}

function start() {
  $("login").hidden = true;
  refresh();
  startEvents();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("login-token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login-token").value = "";
  start();
});

// The address `astralboot token` prints, pasted into a tab that shows this page already, only
// changes the fragment: no new page load.
addEventListener("hashchange", () => {
  if (takeTokenFromAddress()) start();
});
// A page left for another is kept a while in the back/forward cache, frozen: its stream would
// stay open at the server, unread. It goes, and comes back with the page.
addEventListener("pagehide", stopEvents);
addEventListener("pageshow", (e) => {
  if (e.persisted && sessionStorage.getItem(TOKEN_KEY)) start();
});
takeTokenFromAddress();
if (sessionStorage.getItem(TOKEN_KEY)) start();
else askForToken("Give the admin token (astralboot token prints it) to see the machines.");
setInterval(() => {
  if (sessionStorage.getItem(TOKEN_KEY)) refresh();
}, REFRESH_MS);
setInterval(redraw, REDRAW_MS);
