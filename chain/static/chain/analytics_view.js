// The analytics view of an asset: its ATM term structure, and for the page's expiry and settle coin the open
// interest and volume by strike, the dealers' gamma exposure by strike with its walls and flip, and the smile
// with its 25Δ points and the ATM IV. Fed by the `analytics` frames (docs/websocket.md; fields and formulas:
// docs/analytics.md) and, for the smile, by the page's rows. Every chart has its numbers as a table and a CSV.
import { AXIS, bars, chartHeight, COLORS, compactAxis, compactNumber, drawMarks, LiveChart, NO_LINE, NumbersTable, percentAxis, strikeAxis } from "./charts.js";
import * as format from "./format.js";
import { smileData } from "./smile.js";

const percentOf = (fraction) => (fraction == null ? null : fraction * 100);
const percentText = (value) => (value == null ? "–" : `${value.toFixed(1)} %`);
const TENOR_TICKS = [1, 2, 7, 14, 30, 60, 90, 180, 365, 730];
const FEW_TENOR_TICKS = [1, 7, 30, 90, 365]; // on a phone
const daysText = (days) => (days == null ? "–" : days < 10 ? days.toFixed(1) : days.toFixed(0));

// The figures of one panel: a heading, a message instead of the chart when there is nothing to draw, the
// chart, and its numbers (a <details> table and a CSV button).
function buildPanel(parent, { id, title, controls }) {
  const panel = document.createElement("figure");
  panel.className = "chart-panel";
  panel.id = id;
  const caption = document.createElement("figcaption");
  const heading = document.createElement("h2");
  heading.textContent = title;
  const subtitle = document.createElement("span");
  subtitle.className = "panel-subtitle";
  heading.append(" ", subtitle);
  const csv = document.createElement("button");
  csv.type = "button";
  csv.className = "button panel-csv";
  csv.textContent = "CSV";
  caption.append(heading, ...(controls ? [controls] : []), csv);
  const message = document.createElement("p");
  message.className = "panel-message";
  message.setAttribute("role", "status");
  const chart = document.createElement("div");
  chart.className = "chart";
  const details = document.createElement("details");
  details.className = "chart-table";
  details.innerHTML = "<summary>Table</summary><div class=\"table-wrap\"><table></table></div>";
  panel.append(caption, message, chart, details);
  parent.append(panel);
  return { panel, subtitle, csv, message, chart, details };
}

function segmented(label, choices, onChoose) {
  const group = document.createElement("div");
  group.className = "segmented";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", label);
  for (const [value, text] of choices) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.value = value;
    button.textContent = text;
    button.setAttribute("aria-pressed", String(value === choices[0][0]));
    group.append(button);
  }
  group.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-value]");
    if (!button) return;
    for (const other of group.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === button));
    onChoose(button.dataset.value);
  });
  return group;
}

const legendValue = (formatValue) => (u, value) => formatValue(value);
// Calls' or puts' bars of a by-strike chart (`shape`: uPlot's bars options), compact numbers in the legend.
const barSeries = (label, color, shape) => ({ label, stroke: color, fill: `${color}b0`, paths: bars(shape), points: { show: false }, value: legendValue(compactNumber) });

export class AnalyticsView {
  constructor(element, { asset }) {
    this.element = element;
    this.asset = asset;
    this.view = { expiry: null, settle: null };
    this.analytics = null; // the latest frame's AssetAnalytics
    this.expiry = null; // … and its ExpiryAnalytics of the view, or null
    this.ts = null;
    this.rows = [];
    this.forward = null;
    this.activity = "open_interest";
    this.panels = {
      term: this.termPanel(),
      activity: this.activityPanel(),
      gex: this.gexPanel(),
      smile: this.smilePanel(),
    };
    for (const panel of Object.values(this.panels)) {
      panel.parts.csv.addEventListener("click", () => panel.table.download(this.stem(panel.global)));
    }
  }

  stem(global) {
    return global ? `${this.asset}-${this.view.settle}` : `${this.asset}-${this.view.expiry}-${this.view.settle}`;
  }

  // The view the page shows now: the expiry's panels wait for its analytics rather than show another's.
  expect(view) {
    if (view.expiry === this.view.expiry && view.settle === this.view.settle) return;
    this.view = { ...view };
    this.expiry = null;
    this.render(true);
  }

  // An analytics frame of the page's view: `expiry` is null when the feed has none for it.
  show(analytics, expiry, ts) {
    this.analytics = analytics;
    this.expiry = expiry && expiry.expiry === this.view.expiry && expiry.settle === this.view.settle ? expiry : null;
    this.ts = ts;
    this.element.dataset.ts = String(ts);
    this.render();
  }

  setRows(rows, forward, now = false) {
    this.rows = rows;
    this.forward = forward;
    this.renderSmile(now);
  }

  render(now = false) {
    this.renderTerm(now);
    this.renderActivity(now);
    this.renderGex(now);
    this.renderSmile(now);
  }

  // --- term structure ---------------------------------------------------------------

  termPanel() {
    const parts = buildPanel(this.element, { id: "term-panel", title: "ATM term structure" });
    const chart = new LiveChart(parts.chart, (width) => ({
      width,
      height: chartHeight(width),
      // Days on a log scale: a week's expiries and a year's both readable, ticked at the usual tenors.
      scales: { x: { time: false, distr: 3, log: 10 } },
      axes: [
        {
          ...AXIS,
          label: "days to delivery",
          labelSize: 20,
          splits: (u, axis, min, max) => (u.width < 500 ? FEW_TENOR_TICKS : TENOR_TICKS).filter((days) => days >= min && days <= max),
          filter: (u, splits) => splits, // every tenor labelled (a log axis otherwise labels only some)
          values: (u, values) => values.map((v) => String(v)),
        },
        percentAxis,
      ],
      series: [
        { label: "Days", value: legendValue(daysText) },
        { label: "Listed expiries", stroke: COLORS.mark, width: 2, spanGaps: true, value: legendValue(percentText), points: { show: true, size: 6, fill: COLORS.mark } },
        { label: "Constant maturity", stroke: COLORS.accent, paths: NO_LINE, value: legendValue(percentText), points: { show: true, size: 9, fill: COLORS.panel, width: 2 } },
      ],
    }));
    const table = new NumbersTable(parts.details, {
      name: "term-structure",
      columns: [
        { label: "Tenor", field: "tenor" },
        { label: "Kind", field: "kind" },
        { label: "Days", field: "days", format: daysText },
        { label: "ATM IV", field: "atm_iv", format: (value) => format.percent(value, 2), title: (row) => row.missing },
        { label: "Why none", field: "missing", csv: "missing", format: (value) => value || "" },
      ],
    });
    return { parts, chart, table, global: true };
  }

  renderTerm(now) {
    const { parts, chart, table } = this.panels.term;
    const structure = this.analytics?.term_structures.find((item) => item.settle === this.view.settle);
    parts.subtitle.textContent = this.view.settle || "";
    const rows = [];
    for (const point of structure?.expiries || []) {
      rows.push({ tenor: point.expiry, kind: "listed", days: point.years_to_delivery * 365, atm_iv: point.atm_iv, missing: point.missing.atm_iv || null });
    }
    for (const point of structure?.constant_maturities || []) {
      rows.push({ tenor: `${point.days}d`, kind: "constant maturity", days: point.days, atm_iv: point.atm_iv, missing: point.missing.atm_iv || null });
    }
    rows.sort((a, b) => a.days - b.days || a.kind.localeCompare(b.kind));
    table.set(rows);
    if (!this.setMessage(parts, this.analytics === null ? "Analytics appear within a second" : rows.some((row) => row.atm_iv != null) ? "" : `No ATM IV in ${this.view.settle} yet`)) return;
    const days = rows.map((row) => row.days);
    chart.update([days, rows.map((row) => (row.kind === "listed" ? percentOf(row.atm_iv) : null)), rows.map((row) => (row.kind === "listed" ? null : percentOf(row.atm_iv)))], now);
  }

  // --- open interest and volume by strike ----------------------------------------------

  activityPanel() {
    const controls = segmented("By strike", [["open_interest", "Open interest"], ["volume_24h", "Volume 24h"]], (value) => {
      this.activity = value;
      this.renderActivity(true);
    });
    const parts = buildPanel(this.element, { id: "activity-panel", title: "By strike", controls });
    const chart = new LiveChart(parts.chart, (width) => ({
      width,
      height: chartHeight(width),
      scales: { x: { time: false } },
      axes: [strikeAxis, compactAxis],
      series: [
        { label: "Strike", value: legendValue(format.strike) },
        barSeries("Calls", COLORS.call, { size: [0.45, 40], align: -1 }),
        barSeries("Puts", COLORS.put, { size: [0.45, 40], align: 1 }),
      ],
      hooks: { draw: [(u) => drawMarks(u, this.expiryMarks(["forward", "max_pain"]))] },
    }));
    const table = new NumbersTable(parts.details, {
      name: "by-strike",
      columns: [
        { label: "Strike", field: "strike", format: format.strike },
        { label: "Call OI", field: "call_open_interest", format: format.amount },
        { label: "Put OI", field: "put_open_interest", format: format.amount },
        { label: "Call vol 24h", field: "call_volume_24h", format: format.amount },
        { label: "Put vol 24h", field: "put_volume_24h", format: format.amount },
      ],
    });
    return { parts, chart, table, global: false };
  }

  renderActivity(now) {
    const { parts, chart, table } = this.panels.activity;
    const levels = this.expiry?.by_strike || [];
    parts.subtitle.textContent = this.subtitle();
    table.set(levels);
    if (!this.setMessage(parts, this.expiryMessage(levels))) return;
    const field = this.activity;
    chart.update([levels.map((level) => level.strike), levels.map((level) => level[`call_${field}`]), levels.map((level) => level[`put_${field}`])], now);
  }

  // --- gamma exposure by strike --------------------------------------------------------

  gexPanel() {
    const parts = buildPanel(this.element, { id: "gex-panel", title: "Dealer gamma exposure" });
    const chart = new LiveChart(parts.chart, (width) => ({
      width,
      height: chartHeight(width),
      scales: { x: { time: false } },
      axes: [strikeAxis, compactAxis],
      series: [
        { label: "Strike", value: legendValue(format.strike) },
        barSeries("Calls", COLORS.call, { size: [0.6, 40] }),
        barSeries("Puts", COLORS.put, { size: [0.6, 40] }),
        { label: "Net", stroke: COLORS.mark, width: 1.5, spanGaps: true, points: { show: false }, value: legendValue(compactNumber) },
      ],
      hooks: { draw: [(u) => drawMarks(u, this.expiryMarks(["forward", "call_wall", "put_wall", "gamma_flip"]))] },
    }));
    const table = new NumbersTable(parts.details, {
      name: "gamma-exposure",
      columns: [
        { label: "Strike", field: "strike", format: format.strike },
        { label: "Call GEX", field: "call_gex", format: format.amount },
        { label: "Put GEX", field: "put_gex", format: format.amount },
        { label: "Net GEX", field: "net_gex", format: format.amount },
      ],
    });
    return { parts, chart, table, global: false };
  }

  renderGex(now) {
    const { parts, chart, table } = this.panels.gex;
    const levels = this.expiry?.by_strike || [];
    parts.subtitle.textContent = this.subtitle("USD per 1 % move");
    table.set(levels);
    const message = this.expiryMessage(levels) || (levels.some((level) => level.net_gex != null) ? "" : this.expiry.missing.net_gex || "No gamma exposure");
    parts.panel.dataset.flip = this.expiry?.gamma_flip ?? "";
    parts.panel.dataset.callWall = this.expiry?.call_wall ?? "";
    parts.panel.dataset.putWall = this.expiry?.put_wall ?? "";
    if (!this.setMessage(parts, message)) return;
    chart.update([levels.map((level) => level.strike), levels.map((level) => level.call_gex), levels.map((level) => level.put_gex), levels.map((level) => level.net_gex)], now);
  }

  // --- the smile -----------------------------------------------------------------------

  smilePanel() {
    const parts = buildPanel(this.element, { id: "smile-panel-analytics", title: "Smile" });
    const line = (label, stroke, dash) => ({ label, stroke, width: dash ? 1 : 2, dash, spanGaps: true, value: legendValue(percentText), points: { show: !dash, size: 4, fill: stroke } });
    const chart = new LiveChart(parts.chart, (width) => ({
      width,
      height: chartHeight(width),
      scales: { x: { time: false } },
      axes: [strikeAxis, percentAxis],
      series: [
        { label: "Strike", value: legendValue(format.strike) },
        line("Mark IV", COLORS.mark),
        line("Bid IV", COLORS.call, [4, 4]),
        line("Ask IV", COLORS.put, [4, 4]),
        { label: "25Δ", stroke: COLORS.flip, paths: NO_LINE, value: legendValue(percentText), points: { show: true, size: 10, width: 2, fill: COLORS.flip } },
        { label: "ATM IV", stroke: COLORS.accent, paths: NO_LINE, value: legendValue(percentText), points: { show: true, size: 10, width: 2, fill: COLORS.accent } },
      ],
      hooks: { draw: [(u) => drawMarks(u, this.expiryMarks(["forward"]))] },
    }));
    const table = new NumbersTable(parts.details, {
      name: "smile",
      columns: [
        { label: "Strike", field: "strike", format: (value) => (value == null ? "–" : Number(value.toPrecision(8)).toLocaleString("en-US")) },
        { label: "Point", field: "point", format: (value) => value || "" },
        { label: "Mark IV", field: "mark_iv", format: (value) => format.percent(value, 2) },
        { label: "Bid IV", field: "bid_iv", format: (value) => format.percent(value, 2) },
        { label: "Ask IV", field: "ask_iv", format: (value) => format.percent(value, 2) },
      ],
    });
    return { parts, chart, table, global: false };
  }

  // The marked points: where the feed read the 25Δ IVs and the ATM IV (docs/analytics.md).
  smilePoints() {
    const expiry = this.expiry;
    if (!expiry) return [];
    return [
      { point: "25Δ put", strike: expiry.put_25d_strike, mark_iv: expiry.put_25d_iv, series: 4 },
      { point: "ATM", strike: expiry.forward, mark_iv: expiry.atm_iv, series: 5 },
      { point: "25Δ call", strike: expiry.call_25d_strike, mark_iv: expiry.call_25d_iv, series: 4 },
    ].filter((point) => point.strike != null && point.mark_iv != null);
  }

  renderSmile(now) {
    const { parts, chart, table } = this.panels.smile;
    parts.subtitle.textContent = this.subtitle();
    const [strikes, mark, bid, ask] = smileData(this.rows, this.forward);
    const rows = strikes.map((strike, i) => ({
      strike,
      point: null,
      mark_iv: mark[i] == null ? null : mark[i] / 100,
      bid_iv: bid[i] == null ? null : bid[i] / 100,
      ask_iv: ask[i] == null ? null : ask[i] / 100,
    }));
    const points = this.smilePoints();
    const all = [...rows, ...points.map(({ point, strike, mark_iv }) => ({ strike, point, mark_iv, bid_iv: null, ask_iv: null }))];
    all.sort((a, b) => a.strike - b.strike || (a.point ? 1 : -1));
    table.set(all);
    if (!this.setMessage(parts, rows.length ? "" : "No contracts in this view")) return;
    // One x axis for all: the marked points sit between listed strikes, where the lines have no value.
    const data = [all.map((row) => row.strike), [], [], [], [], []];
    for (const row of all) {
      const marked = points.find((point) => point.point === row.point);
      data[1].push(row.point ? null : percentOf(row.mark_iv));
      data[2].push(percentOf(row.bid_iv));
      data[3].push(percentOf(row.ask_iv));
      data[4].push(marked?.series === 4 ? percentOf(row.mark_iv) : null);
      data[5].push(marked?.series === 5 ? percentOf(row.mark_iv) : null);
    }
    chart.update(data, now);
  }

  // --- shared --------------------------------------------------------------------------

  subtitle(extra) {
    const parts = [this.view.expiry, this.view.settle, extra].filter(Boolean);
    return parts.join(" · ");
  }

  expiryMarks(fields) {
    const expiry = this.expiry;
    const forward = expiry?.forward ?? this.forward;
    const marks = {
      forward: { x: forward, label: `F ${format.indexPrice(forward)}`, color: COLORS.accent },
      max_pain: { x: expiry?.max_pain, label: `max pain ${format.strike(expiry?.max_pain)}`, color: COLORS.muted },
      call_wall: { x: expiry?.call_wall, label: `call wall ${format.strike(expiry?.call_wall)}`, color: COLORS.call },
      put_wall: { x: expiry?.put_wall, label: `put wall ${format.strike(expiry?.put_wall)}`, color: COLORS.put },
      gamma_flip: { x: expiry?.gamma_flip, label: `flip ${format.indexPrice(expiry?.gamma_flip)}`, color: COLORS.flip },
    };
    return fields.map((field) => marks[field]);
  }

  expiryMessage(levels) {
    if (this.analytics === null) return "Analytics appear within a second";
    if (!this.expiry) return "No analytics for this expiry and settle coin yet";
    return levels.length ? "" : "No strikes";
  }

  // Show `message` instead of the chart, or the chart when there is none; true when the chart shows.
  setMessage(parts, message) {
    if (parts.message.textContent !== message) parts.message.textContent = message;
    parts.message.hidden = !message;
    parts.chart.hidden = Boolean(message);
    parts.panel.dataset.state = message ? "empty" : "shown";
    return !message;
  }
}
