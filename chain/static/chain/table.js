// The chain as traders read it: calls on the left, the strike in the middle, puts on the right; one
// expiry and one settle coin. Built once per snapshot; afterwards only cells change.
import { CORE_COUNT, QUOTE_FIELDS } from "./columns.js";
import { cell, paint } from "./cells.js";
import * as format from "./format.js";

const PUT_COLUMNS = QUOTE_FIELDS;
const CALL_COLUMNS = [...QUOTE_FIELDS.slice(CORE_COUNT).reverse(), ...QUOTE_FIELDS.slice(0, CORE_COUNT)];

function header(text, className, title) {
  const th = document.createElement("th");
  th.className = className;
  th.textContent = text;
  if (title) th.title = title;
  return th;
}

export class ChainTable {
  constructor(table, flasher) {
    this.table = table;
    this.flasher = flasher;
    this.contracts = new Map(); // symbol → {tr, cells, row}
    this.strikes = []; // [{strike, tr}] in strike order
    this.forward = null;
    this.atmRow = null;
    this.filters = { around: 0, min: null, max: null };
  }

  build(rows) {
    const byStrike = new Map();
    for (const row of rows) {
      if (!byStrike.has(row.strike)) byStrike.set(row.strike, {});
      byStrike.get(row.strike)[row.type] = row;
    }
    const head = document.createElement("thead");
    const sides = document.createElement("tr");
    this.callsHead = header("Calls", "side-head calls-head call");
    this.putsHead = header("Puts", "side-head puts-head put");
    sides.append(this.callsHead, header("", "strike"), this.putsHead);
    const labels = document.createElement("tr");
    for (const column of CALL_COLUMNS) labels.append(header(column.short || column.label, `call f-${column.field}`, column.label));
    labels.append(header("Strike", "strike"));
    for (const column of PUT_COLUMNS) labels.append(header(column.short || column.label, `put f-${column.field}`, column.label));
    head.append(sides, labels);

    const body = document.createElement("tbody");
    this.contracts.clear();
    this.strikes = [];
    for (const strike of [...byStrike.keys()].sort((a, b) => a - b)) {
      const pair = byStrike.get(strike);
      const tr = document.createElement("tr");
      tr.dataset.strike = strike;
      const callCells = {};
      const putCells = {};
      for (const column of CALL_COLUMNS) tr.append((callCells[column.field] = cell(`call f-${column.field}`)));
      const strikeCell = cell("strike");
      strikeCell.textContent = format.strike(strike);
      tr.append(strikeCell);
      for (const column of PUT_COLUMNS) tr.append((putCells[column.field] = cell(`put f-${column.field}`)));
      for (const [type, cells] of [["call", callCells], ["put", putCells]]) {
        const row = pair[type];
        if (!row) continue;
        tr.dataset[type] = row.symbol;
        this.contracts.set(row.symbol, { tr, cells, row });
        paint(cells, row, QUOTE_FIELDS, null);
      }
      this.strikes.push({ strike, tr, strikeCell });
      body.append(tr);
    }
    this.table.replaceChildren(head, body);
    this.forward = null;
    this.atmRow = null;
    this.relayout(forwardOf(rows));
    this.countColumns();
  }

  // Apply a row from an update; returns false when it is not in the table (another view).
  update(row) {
    const contract = this.contracts.get(row.symbol);
    if (!contract) return false;
    contract.row = row;
    paint(contract.cells, row, QUOTE_FIELDS, contract.tr.hidden ? null : this.flasher);
    return true;
  }

  // The forward (the expiry's underlying price) moves the ATM line, the shading and, with "±N
  // around ATM", which strikes show.
  relayout(forward) {
    if (forward != null) this.forward = forward;
    const strikes = this.strikes;
    if (!strikes.length) return;
    let atm = 0;
    if (this.forward != null) {
      for (let i = 1; i < strikes.length; i++) {
        if (Math.abs(strikes[i].strike - this.forward) < Math.abs(strikes[atm].strike - this.forward)) atm = i;
      }
    }
    const { around, min, max } = this.filters;
    const lineIndex = this.forward == null ? -1 : strikes.findIndex(({ strike }) => strike > this.forward);
    strikes.forEach(({ strike, tr }, i) => {
      const shown = (!around || Math.abs(i - atm) <= around) && (min == null || strike >= min) && (max == null || strike <= max);
      if (tr.hidden === shown) tr.hidden = !shown;
      const callItm = this.forward != null && strike < this.forward;
      const putItm = this.forward != null && strike > this.forward;
      tr.classList.toggle("itm-call", callItm);
      tr.classList.toggle("itm-put", putItm);
      tr.classList.toggle("atm", i === atm && this.forward != null);
      tr.classList.toggle("atm-line", i === lineIndex);
    });
    const line = lineIndex >= 0 ? strikes[lineIndex] : null;
    if (line) line.strikeCell.dataset.forward = format.indexPrice(this.forward);
    this.atmStrike = this.forward == null ? null : strikes[atm].strike;
  }

  setFilters(filters) {
    this.filters = filters;
    this.relayout(null);
  }

  // The side headers span the visible columns of their side (hidden columns leave the grid).
  countColumns() {
    if (!this.callsHead) return;
    const visible = (side) => this.table.querySelectorAll(`thead tr:nth-child(2) th.${side}`);
    const count = (side) => [...visible(side)].filter((th) => getComputedStyle(th).display !== "none").length;
    this.callsHead.colSpan = Math.max(1, count("call"));
    this.putsHead.colSpan = Math.max(1, count("put"));
  }

  visibleRows(sides) {
    const rows = [];
    for (const { tr } of this.strikes) {
      if (tr.hidden) continue;
      for (const type of ["call", "put"]) {
        if (sides !== "both" && sides !== `${type}s`) continue;
        const symbol = tr.dataset[type];
        if (symbol) rows.push(this.contracts.get(symbol).row);
      }
    }
    return rows;
  }
}

// The expiry's forward: the underlying price of its most recently quoted contract.
export function forwardOf(rows) {
  let latest = null;
  for (const row of rows) {
    if (row.underlying_price != null && (latest === null || (row.ts || 0) > (latest.ts || 0))) latest = row;
  }
  return latest ? latest.underlying_price : null;
}
