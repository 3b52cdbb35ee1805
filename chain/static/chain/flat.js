// Every contract of the asset in one table, sortable by any column and searchable by symbol.
// Rows off screen are not painted until they scroll into view: with ~1,000 contracts updating
// several times a second, only what can be seen costs anything.
import { IDENTITY_FIELDS, QUOTE_FIELDS } from "./columns.js";
import { cell, paint } from "./cells.js";

const COLUMNS = [...IDENTITY_FIELDS, ...QUOTE_FIELDS];
const DEFAULT_ORDER = (a, b) => a.delivery_ms - b.delivery_ms || a.strike - b.strike || a.type.localeCompare(b.type) || a.settle.localeCompare(b.settle);

export class FlatTable {
  constructor(table, flasher) {
    this.table = table;
    this.flasher = flasher;
    this.contracts = new Map(); // symbol → {tr, cells, row, haystack}
    this.sort = { field: null, descending: false };
    this.query = [];
    this.onScreen = new Set();
    this.unpainted = new Set();
    // Relative to the viewport, through the scroller's clipping: works whether the table or the page scrolls.
    this.observer = new IntersectionObserver((entries) => this.observed(entries), { rootMargin: "300px 0px" });
  }

  build(rows) {
    this.observer.disconnect();
    this.onScreen.clear();
    this.unpainted.clear();
    const head = document.createElement("thead");
    const labels = document.createElement("tr");
    for (const column of COLUMNS) {
      const th = document.createElement("th");
      th.className = `f-${column.field} sortable`;
      th.textContent = column.label;
      th.title = `${column.label}: click to sort`;
      th.dataset.field = column.field;
      th.addEventListener("click", () => this.sortBy(column.field));
      labels.append(th);
    }
    head.append(labels);
    this.body = document.createElement("tbody");
    this.contracts.clear();
    for (const row of rows) this.add(row);
    this.table.replaceChildren(head, this.body);
    this.order();
  }

  add(row) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = row.symbol;
    const cells = {};
    for (const column of COLUMNS) tr.append((cells[column.field] = cell(`f-${column.field}`)));
    paint(cells, row, COLUMNS, null);
    const haystack = { symbol: row.symbol, parts: [...row.symbol.split("-"), row.type.toUpperCase(), row.settle] };
    this.contracts.set(row.symbol, { tr, cells, row, haystack });
    tr.hidden = !this.matches(haystack);
    this.body.append(tr);
    this.observer.observe(tr);
  }

  update(row) {
    const contract = this.contracts.get(row.symbol);
    if (!contract) return false;
    contract.row = row;
    if (this.onScreen.has(contract.tr)) paint(contract.cells, row, QUOTE_FIELDS, this.flasher);
    else this.unpainted.add(row.symbol);
    return true;
  }

  observed(entries) {
    for (const entry of entries) {
      if (!entry.isIntersecting) {
        this.onScreen.delete(entry.target);
        continue;
      }
      this.onScreen.add(entry.target);
      const symbol = entry.target.dataset.symbol;
      if (this.unpainted.delete(symbol)) {
        const contract = this.contracts.get(symbol);
        paint(contract.cells, contract.row, QUOTE_FIELDS, null);
      }
    }
  }

  sortBy(field) {
    this.sort = { field, descending: this.sort.field === field ? !this.sort.descending : false };
    this.order();
  }

  // Live values do not reorder the table by themselves (rows jumping under the cursor cannot be
  // read); the order is taken when a header is clicked.
  order() {
    const { field, descending } = this.sort;
    const contracts = [...this.contracts.values()];
    const compare = field
      ? (a, b) => {
          const x = a.row[field];
          const y = b.row[field];
          if (x == null || y == null) return x == null ? (y == null ? 0 : 1) : -1; // no value last
          const result = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
          return (descending ? -result : result) || DEFAULT_ORDER(a.row, b.row);
        }
      : (a, b) => DEFAULT_ORDER(a.row, b.row);
    contracts.sort(compare);
    this.body.append(...contracts.map((contract) => contract.tr));
    for (const th of this.table.querySelectorAll("th[data-field]")) {
      th.removeAttribute("aria-sort");
      if (th.dataset.field === field) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    }
  }

  search(text) {
    this.query = text.toUpperCase().split(/\s+/).filter(Boolean);
    for (const { tr, haystack } of this.contracts.values()) {
      const shown = this.matches(haystack);
      if (tr.hidden === shown) tr.hidden = !shown;
    }
  }

  // Each word must start a part of the symbol ("26DEC25", "100000", "C") or be the type or the settle
  // coin; a word with a dash matches anywhere in the symbol ("BTC-26DEC25-1").
  matches({ symbol, parts }) {
    return this.query.every((token) => (token.includes("-") ? symbol.includes(token) : parts.some((part) => part.startsWith(token))));
  }

  remove(symbol) {
    const contract = this.contracts.get(symbol);
    if (!contract) return;
    this.observer.unobserve(contract.tr);
    this.onScreen.delete(contract.tr);
    contract.tr.remove();
    this.contracts.delete(symbol);
  }

  visibleRows() {
    return [...this.body.children].filter((tr) => !tr.hidden).map((tr) => this.contracts.get(tr.dataset.symbol).row);
  }

  get shownCount() {
    let shown = 0;
    for (const { tr } of this.contracts.values()) if (!tr.hidden) shown += 1;
    return shown;
  }
}
