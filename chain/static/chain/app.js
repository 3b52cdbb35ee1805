// The options chain page: state, controls and the live connection. Rows live in one Map (symbol →
// row); frames update it, and once per animation frame the changed contracts' cells are repainted.
import { AnalyticsView } from "./analytics_view.js";
import { applyHidden, buildMenu, IDENTITY_FIELDS, loadHidden, QUOTE_FIELDS, saveHidden } from "./columns.js";
import { Flasher } from "./cells.js";
import { FlatTable } from "./flat.js";
import * as format from "./format.js";
import { CLOSE_DISABLED_ASSET, LiveSocket } from "./live.js";
import { Smile } from "./smile.js";
import { ExpiryStrip } from "./strip.js";
import { ChainTable, forwardOf } from "./table.js";

const config = JSON.parse(document.getElementById("chain-config").textContent);
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// FEED_STALE_AFTER, as the feed and /api/health/ apply it (ingest.status.FeedStatus.stale_reason): data older than
// this, or a lag p99 past it, is not "live".
const STALE_AFTER_MS = config.stale_after_ms;

const MODES = ["chain", "flat", "analytics"];

const state = {
  mode: MODES.includes(params.get("view")) ? params.get("view") : "chain",
  expiry: params.get("expiry"),
  settle: params.get("settle")?.toUpperCase() === "USDC" ? "USDC" : "USDT",
  sides: "both",
  expiries: config.expiries || [],
  rows: new Map(),
  feed: null,
  serverView: null, // the view of the last snapshot: what the frames that follow it are about
  connection: "connecting",
  everLive: false,
  lastFrameAt: 0,
  data: null, // the age of the newest data seen (exchange ts → the server's ts of its frame) and when it was seen
  hidden: loadHidden(),
};
state.expiry = state.expiry || nearestExpiry();

const flasher = new Flasher();
const chain = new ChainTable($("chain"), flasher);
const flat = new FlatTable($("flat"), flasher);
const smile = new Smile($("smile"));
const strip = new ExpiryStrip($("strip"));
const analytics = new AnalyticsView($("analytics"), { asset: config.asset });
const hiddenStyle = document.head.appendChild(document.createElement("style"));
const dirty = new Set();
let paintScheduled = false;

function nearestExpiry() {
  const upcoming = state.expiries.find((expiry) => expiry.delivery_ms > Date.now());
  return (upcoming || state.expiries[0] || {}).expiry || null;
}

function wantedView() {
  return state.mode === "flat" ? { expiry: null, settle: null } : { expiry: state.expiry, settle: state.settle };
}

function viewRows() {
  const rows = [];
  for (const row of state.rows.values()) {
    if (state.mode === "flat" || (row.expiry === state.expiry && row.settle === state.settle)) rows.push(row);
  }
  return rows;
}

// --- frames -------------------------------------------------------------------------

function onFrame(frame) {
  state.lastFrameAt = Date.now();
  if (frame.type === "snapshot") onSnapshot(frame);
  else if (frame.type === "update") onUpdate(frame);
  else if (frame.type === "instruments") onInstruments(frame);
  else if (frame.type === "analytics") onAnalytics(frame);
  else if (frame.type === "status") setFeed({ ...state.feed, state: frame.state });
  else if (frame.type === "error") notice(`The server refused a request: ${frame.message}`, 6000);
  schedulePaint();
}

// A long snapshot comes in parts (at most 500 rows a frame): the first starts over, the last applies.
let incoming = null;

function onSnapshot(frame) {
  if (frame.part === 1) incoming = new Map();
  if (!incoming) return;
  for (const row of frame.rows) incoming.set(row.symbol, row);
  if (frame.part < frame.parts) return;
  const wanted = wantedView();
  state.serverView = frame.view;
  state.expiries = frame.expiries;
  setFeed(frame.feed);
  noteData(frame.ts, frame.feed.data_ts);
  state.rows = incoming;
  incoming = null;
  dirty.clear();
  renderExpiries();
  if (frame.view.expiry !== wanted.expiry || frame.view.settle !== wanted.settle) {
    socket.setView(wanted); // the user changed the view meanwhile: the right snapshot follows
    return;
  }
  if (state.mode !== "flat" && !fixView()) return;
  rebuild();
}

// Keep the chain on an expiry that exists, in a settle coin it has; false if that needs a new view.
function fixView() {
  const known = state.expiries.find((expiry) => expiry.expiry === state.expiry);
  const expiry = known ? state.expiry : nearestExpiry();
  const settles = state.expiries.find((item) => item.expiry === expiry)?.settles || [];
  const settle = settles.length && !settles.includes(state.settle) ? settles[0] : state.settle;
  if (expiry === state.expiry && settle === state.settle) return true;
  state.expiry = expiry;
  state.settle = settle;
  changeView();
  return false;
}

// Analytics that follow a snapshot of another view (the user has just changed it) are not this view's.
function onAnalytics(frame) {
  const wanted = wantedView();
  if (wanted.expiry && state.serverView?.expiry === wanted.expiry && state.serverView?.settle === wanted.settle) {
    strip.show(frame.expiry, frame.ts);
    analytics.show(frame.analytics, frame.expiry, frame.ts);
  }
}

function onUpdate(frame) {
  let newest = 0;
  for (const row of frame.rows) {
    take(row);
    if (row.ts > newest) newest = row.ts;
  }
  noteData(frame.ts, newest);
}

// Ages are measured on the server's clock (exchange ts against the frame's ts), then aged on this one, so that
// a browser whose clock is off does not call live data stale.
function noteData(serverTs, dataTs) {
  if (!dataTs || !serverTs) return;
  const seen = { age: Math.max(0, serverTs - dataTs), at: Date.now() };
  if (state.data === null || seen.age <= dataAge()) state.data = seen;
}

function dataAge() {
  return state.data === null ? null : state.data.age + (Date.now() - state.data.at);
}

function take(row) {
  const held = state.rows.get(row.symbol);
  if (held && held.ts != null && row.ts != null && row.ts < held.ts) return; // an older snapshot
  state.rows.set(row.symbol, row);
  dirty.add(row.symbol);
}

function onInstruments(frame) {
  for (const symbol of frame.delivered) state.rows.delete(symbol);
  for (const row of frame.listed) state.rows.set(row.symbol, row);
  state.expiries = frame.expiries;
  renderExpiries();
  if (state.mode !== "flat" && !fixView()) return;
  rebuild();
}

function setFeed(feed) {
  state.feed = feed;
  if (feed && feed.state === "live") state.everLive = true;
  renderIndicator();
}

// --- painting -----------------------------------------------------------------------

function schedulePaint() {
  if (paintScheduled) return;
  paintScheduled = true;
  requestAnimationFrame(paint);
}

// The analytics view has no table: its rows are painted into the chain when the chain is shown again (rebuild).
function paint() {
  paintScheduled = false;
  const table = { chain, flat, analytics: null }[state.mode];
  let latest = null;
  for (const symbol of dirty) {
    const row = state.rows.get(symbol);
    if (!row) continue;
    table?.update(row);
    if (row.index_price != null && (!latest || row.ts > latest.ts)) latest = row;
  }
  dirty.clear();
  if (latest) setIndex(config.asset, latest.index_price);
  if (state.mode === "chain") {
    const rows = viewRows();
    const forward = forwardOf(rows);
    if (forward !== chain.forward) chain.relayout(forward);
    smile.update(rows, forward);
    renderSummary(forward);
  } else if (state.mode === "analytics") {
    const rows = viewRows();
    analytics.setRows(rows, forwardOf(rows));
  }
  renderIndicator();
}

function rebuild() {
  const rows = viewRows();
  for (const mode of MODES) document.body.classList.toggle(`mode-${mode}`, state.mode === mode);
  $("chain").hidden = state.mode === "flat";
  $("flat").hidden = state.mode !== "flat";
  if (state.mode === "flat") {
    flat.build(rows);
    flat.search($("search").value);
  } else if (state.mode === "analytics") {
    analytics.setRows(rows, forwardOf(rows), true);
  } else {
    chain.build(rows);
    chain.setFilters(filters());
    smile.update(rows, chain.forward, true);
    $("smile-title").textContent = `${config.asset} ${state.expiry || ""} ${state.settle}`;
  }
  renderSummary(chain.forward);
  renderControls();
}

function renderSummary(forward) {
  let text;
  if (state.mode === "flat") {
    text = `${flat.shownCount} of ${flat.contracts.size} contracts`;
  } else {
    const strikes = chain.strikes.filter(({ tr }) => !tr.hidden).length;
    text = `${strikes} strikes · forward ${format.indexPrice(forward)}`;
  }
  if ($("summary").textContent !== text) $("summary").textContent = text;
}

const INDICATOR_TEXTS = { live: "Live", stale: "Stale", reconnecting: "Reconnecting…", connecting: "Connecting…", stopped: "Stopped" };

function renderIndicator() {
  let status;
  const feed = state.feed?.state;
  const p50 = state.feed?.lag_p50_ms ?? null;
  const p99 = state.feed?.lag_p99_ms ?? null;
  const lagging = p99 != null && p99 > STALE_AFTER_MS;
  const aged = (dataAge() ?? Date.now() - state.lastFrameAt) > STALE_AFTER_MS;
  if (state.connection === "refused") status = "stopped";
  else if (state.connection !== "open") status = state.everLive || state.lastFrameAt ? "reconnecting" : "connecting";
  else if (feed === "live") status = lagging || aged ? "stale" : "live";
  else if (feed === "connecting") status = state.everLive ? "reconnecting" : "connecting";
  else if (feed === "stale" || feed === "stopped") status = feed;
  else status = "connecting"; // no feed has run for this asset yet
  // The median lag next to the state; the p99, or the data's age, instead when it is what makes the feed stale.
  let lag = "";
  if (status === "live" || status === "stale") {
    if (status === "stale" && aged && dataAge() != null) lag = `· data ${format.lag(dataAge())} old`;
    else if (lagging) lag = `· lag p99 ${format.lag(p99)}`;
    else if (p50 != null) lag = `· lag ${format.lag(p50)}`;
  }
  const title = [
    p50 != null ? `Lag, exchange → stored, over the last 10 s: p50 ${format.lag(p50)}, p99 ${format.lag(p99)}` : "",
    state.feed?.last_message_ts ? `Last exchange message ${new Date(state.feed.last_message_ts).toISOString()}` : "",
    dataAge() != null ? `Newest data ${format.lag(dataAge())} old` : "",
  ].filter(Boolean).join("\n");
  const indicator = $("indicator");
  const lagElement = indicator.querySelector(".indicator-lag");
  if (indicator.dataset.state === status && lagElement.textContent === lag && indicator.title === title) return;
  indicator.dataset.state = status;
  indicator.querySelector(".indicator-text").textContent = INDICATOR_TEXTS[status];
  lagElement.textContent = lag;
  indicator.title = title;
}

function renderExpiries() {
  const nav = $("expiries");
  const now = Date.now();
  const buttons = state.expiries.map(({ expiry, delivery_ms, settles }) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "expiry-tab";
    button.dataset.expiry = expiry;
    button.setAttribute("aria-pressed", String(expiry === state.expiry));
    button.title = `Delivery ${new Date(delivery_ms).toISOString().replace(".000Z", "Z")} · ${(settles || []).join(", ")}`;
    const left = document.createElement("small");
    left.textContent = format.timeLeft(delivery_ms, now);
    button.append(expiry, left);
    return button;
  });
  nav.replaceChildren(...buttons);
}

function renderControls() {
  const settles = state.expiries.find((item) => item.expiry === state.expiry)?.settles || ["USDT", "USDC"];
  for (const button of $("mode").querySelectorAll("button")) button.setAttribute("aria-pressed", String(button.dataset.mode === state.mode));
  for (const button of $("settle").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.settle === state.settle));
    button.disabled = !settles.includes(button.dataset.settle);
  }
  for (const button of $("sides").querySelectorAll("button")) button.setAttribute("aria-pressed", String(button.dataset.sides === state.sides));
  for (const button of $("expiries").querySelectorAll("button")) button.setAttribute("aria-pressed", String(button.dataset.expiry === state.expiry));
  const query = new URLSearchParams();
  if (state.mode !== "chain") query.set("view", state.mode);
  if (state.mode !== "flat") {
    if (state.expiry) query.set("expiry", state.expiry);
    query.set("settle", state.settle);
  }
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

function setIndex(asset, price) {
  const tab = document.querySelector(`.asset-tab[data-asset="${asset}"] [data-index]`);
  const text = format.indexPrice(price);
  if (tab && tab.textContent !== text) tab.textContent = text;
}

function notice(text, forMs) {
  const element = $("notice");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(notice.timer);
  if (forMs) notice.timer = setTimeout(() => (element.hidden = true), forMs);
}

// --- controls -----------------------------------------------------------------------

function changeView() {
  socket.setView(wantedView());
  strip.expect(wantedView());
  analytics.expect(wantedView());
  renderControls();
}

function filters() {
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  return { around: Number($("around").value), min: number("strike-min"), max: number("strike-max") };
}

$("expiries").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-expiry]");
  if (!button || button.dataset.expiry === state.expiry) return;
  state.expiry = button.dataset.expiry;
  if (state.mode === "flat") state.mode = "chain";
  fixView() && changeView();
});
$("mode").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-mode]");
  if (!button || button.dataset.mode === state.mode) return;
  const sameView = state.mode !== "flat" && button.dataset.mode !== "flat";
  state.mode = button.dataset.mode;
  // The chain and the analytics view show the same expiry: the rows in hand serve, no new snapshot is needed.
  if (sameView) rebuild();
  else changeView();
});
$("settle").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-settle]");
  if (!button || button.disabled || button.dataset.settle === state.settle) return;
  state.settle = button.dataset.settle;
  changeView();
});
$("sides").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-sides]");
  if (!button) return;
  state.sides = button.dataset.sides;
  $("chain").className = `chain-table sides-${state.sides}`;
  chain.countColumns();
  renderControls();
});
for (const id of ["around", "strike-min", "strike-max"]) {
  $(id).addEventListener("input", () => {
    chain.setFilters(filters());
    renderSummary(chain.forward);
  });
}
$("search").addEventListener("input", () => {
  flat.search($("search").value);
  renderSummary(chain.forward);
});
$("export").addEventListener("click", exportCsv);
document.addEventListener("click", (event) => {
  if (!event.target.closest("#columns")) $("columns").open = false;
});

applyHidden(state.hidden, hiddenStyle);
buildMenu($("columns-menu"), state.hidden, (hidden) => {
  saveHidden(hidden);
  applyHidden(hidden, hiddenStyle);
  chain.countColumns();
});

// --- CSV ----------------------------------------------------------------------------

function exportCsv() {
  const rows = state.mode === "flat" ? flat.visibleRows() : chain.visibleRows(state.sides);
  const fields = [...IDENTITY_FIELDS.map((column) => column.field), ...QUOTE_FIELDS.filter((column) => !state.hidden.has(column.field)).map((column) => column.field), "ts"];
  const quote = (value) => {
    const text = value == null ? "" : String(value);
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [fields.join(","), ...rows.map((row) => fields.map((field) => quote(row[field])).join(","))];
  const name = state.mode === "flat" ? `${config.asset}-all` : `${config.asset}-${state.expiry}-${state.settle}`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([`${lines.join("\n")}\n`], { type: "text/csv" }));
  link.download = `${name}-${new Date().toISOString().slice(0, 19).replaceAll(":", "")}Z.csv`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// --- the other assets' index prices, this feed's lag, and the clocks ----------------

// The WebSocket carries the lag in snapshots only (state changes come as status frames): the
// figures are refreshed from the same poll as the other assets' index prices.
function setLag(tab) {
  state.feed = { ...state.feed, lag_p50_ms: tab.lag_p50_ms, lag_p99_ms: tab.lag_p99_ms };
  renderIndicator();
}

async function refreshIndexes() {
  try {
    const response = await fetch(config.indexes_url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    for (const tab of (await response.json()).assets) {
      if (tab.symbol === config.asset) setLag(tab);
      else if (tab.index_price != null) setIndex(tab.symbol, tab.index_price);
    }
  } catch {
    // Offline: the indicator says so already.
  }
}

for (const tab of config.assets) if (tab.index_price != null) setIndex(tab.symbol, tab.index_price);
setInterval(refreshIndexes, 5000);
setInterval(renderExpiries, 30000);
setInterval(renderIndicator, 1000);

const socket = new LiveSocket({
  path: config.socket_path,
  view: wantedView(),
  onFrame,
  onConnection(connection, code) {
    state.connection = connection;
    if (connection === "refused") {
      notice(code === CLOSE_DISABLED_ASSET ? `${config.asset} is disabled.` : `${config.asset} is not configured.`);
    }
    renderIndicator();
  },
});
renderExpiries();
renderControls();
strip.expect(wantedView());
analytics.expect(wantedView());
for (const mode of MODES) document.body.classList.toggle(`mode-${mode}`, state.mode === mode);
socket.connect();
window.chainPage = { state, chain, flat, socket, strip, analytics };
