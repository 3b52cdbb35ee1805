// The strip above the chain: the page's expiry (and settle coin) as the feed's analytics see it, from the
// `expiry` of the latest `analytics` frame (docs/websocket.md; fields and units: docs/analytics.md). Built once;
// afterwards a value's text is written only when it changes, into cells as wide as their widest text, so that
// the once-a-second updates neither flicker nor move the figures beside them.
import * as format from "./format.js";

const WAITING = "Analytics appear within a second";
const NONE = "No analytics for this expiry and settle coin yet";

// `width` in ch: tabular digits are 1ch each, so a cell this wide holds every value the field takes.
const FIGURES = [
  {
    label: "Delivery", field: "ms_to_delivery", width: 8,
    format: (ms) => format.timeLeft(ms, 0),
    title: "Time left to delivery (08:00 UTC), when the analytics were computed",
  },
  { label: "Forward", field: "forward", width: 9, format: format.indexPrice, title: "The expiry's forward (USD): the median underlying price of its contracts" },
  {
    label: "Basis p.a.", field: "basis_annualised", width: 8, format: (value) => format.signedPercent(value, 2),
    title: "The forward's premium over the index, simple-annualised: (F / index − 1) / T",
  },
  { label: "ATM IV", field: "atm_iv", width: 6, format: format.percent, title: "Implied volatility at the forward (log-moneyness 0)" },
  {
    label: "25Δ RR", field: "rr_25d", width: 6, format: format.volPoints,
    title: "Risk reversal in vol points: 25Δ call IV − 25Δ put IV; negative when puts are bid over calls",
  },
  {
    label: "25Δ BF", field: "bf_25d", width: 6, format: format.volPoints,
    title: "Butterfly in vol points: (25Δ call IV + 25Δ put IV) / 2 − ATM IV",
  },
  {
    label: "Straddle", field: "straddle", width: 6, format: format.amount,
    title: "The ATM straddle (USD): call mid + put mid at the ATM strike",
    extra: { field: "straddle_of_forward", width: 6, format: format.percent, title: "The straddle as a share of the forward" },
  },
  {
    label: "1σ move", field: "implied_move", width: 6, format: format.amount,
    title: "One standard deviation of the move to delivery (USD): F · ATM IV · √T",
    extra: { field: "implied_move_of_forward", width: 6, format: format.percent, title: "The move as a share of the forward: ATM IV · √T" },
  },
  { label: "Max pain", field: "max_pain", width: 6, format: format.strike, title: "The strike at which the open options would pay their holders least at delivery" },
  {
    label: "P/C OI", field: "put_call_open_interest", width: 4, format: format.ratio,
    title: "Put open interest over call open interest (contracts)",
  },
];

function valueCell(figure, className) {
  const dd = document.createElement("dd");
  dd.className = className;
  dd.dataset.field = figure.field;
  dd.style.minWidth = `${figure.width}ch`;
  dd.textContent = format.EMPTY;
  return { dd, figure, text: format.EMPTY, title: "" };
}

export class ExpiryStrip {
  constructor(element) {
    this.element = element;
    this.heading = element.querySelector(".strip-title");
    this.message = element.querySelector(".strip-message");
    this.view = { expiry: null, settle: null };
    const list = element.querySelector(".strip-figures");
    this.cells = [];
    for (const figure of FIGURES) {
      const group = document.createElement("div");
      group.className = "strip-figure";
      const dt = document.createElement("dt");
      dt.textContent = figure.label;
      const cells = [valueCell(figure, "strip-value")];
      if (figure.extra) cells.push(valueCell(figure.extra, "strip-extra"));
      group.append(dt, ...cells.map(({ dd }) => dd));
      list.append(group);
      this.cells.push(...cells);
    }
  }

  // The view the page shows now: until its analytics come, the strip says they will.
  expect(view) {
    if (view.expiry === this.view.expiry && view.settle === this.view.settle) return;
    this.view = { expiry: view.expiry, settle: view.settle };
    this.heading.textContent = view.expiry ? `${view.expiry} · ${view.settle}` : "";
    for (const name of ["expiry", "settle", "ts"]) delete this.element.dataset[name];
    this.setState("waiting", WAITING);
  }

  // `expiry`: an analytics frame's ExpiryAnalytics for the page's view, or null (the feed has none for it);
  // `ts`: when the feed computed them.
  show(expiry, ts) {
    if (expiry === null) {
      this.setState("none", NONE);
      return;
    }
    if (expiry.expiry !== this.view.expiry || expiry.settle !== this.view.settle) return;
    const missing = expiry.missing || {};
    for (const cell of this.cells) {
      const value = expiry[cell.figure.field] ?? null;
      const text = cell.figure.format(value);
      // A null's tooltip is why it is null (docs/analytics.md: every null has its reason in `missing`).
      const title = value === null ? missing[cell.figure.field] || "Not computed" : cell.figure.title;
      if (cell.text !== text) {
        cell.dd.textContent = text;
        cell.text = text;
      }
      if (cell.title !== title) {
        cell.dd.title = title;
        cell.title = title;
      }
      cell.dd.dataset.value = value === null ? "" : String(value);
    }
    Object.assign(this.element.dataset, { expiry: expiry.expiry, settle: expiry.settle, ts: String(ts) });
    this.element.title = `Computed ${new Date(ts).toISOString().replace(/\.\d+Z$/, "Z")}`;
    this.setState("shown", "");
  }

  setState(state, message) {
    this.element.dataset.state = state;
    if (this.message.textContent !== message) this.message.textContent = message;
  }
}
