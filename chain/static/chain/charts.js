// What the page's charts share: uPlot (from npm) on the dark background, sized to their container, redrawn at
// most once a second, with vertical markers; and the table + CSV view that every chart has of its numbers.
import uPlot from "../vendor/uplot/uPlot.esm.js";

export const AXIS = { stroke: "#9aa4b2", grid: { stroke: "#263041", width: 1 }, ticks: { stroke: "#263041", width: 1 } };
export const COLORS = {
  call: "#5fb878", put: "#e0736b", mark: "#f0c674", accent: "#6ea8fe", muted: "#8b95a5", flip: "#c792ea", panel: "#151a22",
};
export const bars = uPlot.paths.bars;
const BACKDROP = "rgba(21, 26, 34, 0.85)"; // --panel, nearly opaque
// A series drawn as points only (uPlot draws no line when its path builder returns nothing).
export const NO_LINE = () => null;

export const strikeAxis = { ...AXIS, values: (u, values) => values.map((v) => v.toLocaleString("en-US")) };
export const percentAxis = { ...AXIS, size: 48, values: (u, values) => values.map((v) => `${v.toFixed(0)}%`) };

// Compact USD: 1,250,000 → "1.25M"; on an axis and in a legend.
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });
export const compactNumber = (value) => (value == null ? "–" : compact.format(value));
export const compactAxis = { ...AXIS, size: 56, values: (u, values) => values.map(compactNumber) };

// One chart in `container`: `options(width)` gives uPlot's options for a width (their height follows it),
// `update(data)` redraws at most once a second unless `now`.
export class LiveChart {
  constructor(container, options) {
    this.container = container;
    this.options = options;
    this.plot = null;
    this.pending = null;
    this.lastDrawn = -Infinity;
    this.timer = null;
    new ResizeObserver(() => this.resize()).observe(container);
  }

  update(data, now = false) {
    this.pending = data;
    const wait = 1000 - (performance.now() - this.lastDrawn);
    if (wait <= 0 || now) this.draw();
    else if (!this.timer) this.timer = setTimeout(() => this.draw(), wait);
  }

  draw() {
    clearTimeout(this.timer);
    this.timer = null;
    const width = this.container.clientWidth;
    if (!this.pending || !width) return; // hidden: drawn when it shows (resize)
    const data = this.pending;
    this.pending = null;
    this.lastDrawn = performance.now();
    if (!this.plot) this.plot = new uPlot(this.options(width), data, this.container);
    else this.plot.setData(data);
  }

  resize() {
    const width = this.container.clientWidth;
    if (!width) return;
    if (!this.plot) {
      this.draw();
      return;
    }
    const { height } = this.options(width);
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }
}

export function chartHeight(width) {
  return Math.max(200, Math.min(300, Math.round(width * 0.55)));
}

// Dashed vertical lines at x values, each labelled at the top: `marks()` gives [{x, label, color}].
export function drawMarks(u, marks) {
  const context = u.ctx;
  const { left, top, width, height } = u.bbox;
  context.save();
  context.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
  context.textBaseline = "top";
  let labelRow = 0;
  for (const { x, label, color } of marks) {
    if (x == null) continue;
    const position = Math.round(u.valToPos(x, "x", true));
    if (position < left || position > left + width) continue;
    context.strokeStyle = color;
    context.setLineDash([3, 3]);
    context.beginPath();
    context.moveTo(position, top);
    context.lineTo(position, top + height);
    context.stroke();
    // Labels stagger down a row each so that marks close together stay readable.
    // On a patch of the panel's colour: legible over bars and lines.
    const textWidth = context.measureText(label).width;
    const textX = Math.min(position + 3 * devicePixelRatio, left + width - textWidth);
    const textY = top + 2 * devicePixelRatio + labelRow * 14 * devicePixelRatio;
    context.fillStyle = BACKDROP;
    context.fillRect(textX - devicePixelRatio, textY - devicePixelRatio, textWidth + 2 * devicePixelRatio, 13 * devicePixelRatio);
    context.fillStyle = color;
    context.fillText(label, textX, textY);
    labelRow = (labelRow + 1) % 3;
  }
  context.restore();
}

// A chart's numbers as a table (rendered only while its <details> is open) and as a CSV download.
// `columns`: [{label, field, format}], `rows`: objects; the CSV has the raw values, the table the formatted.
export class NumbersTable {
  constructor(details, { name, columns }) {
    this.details = details;
    this.name = name;
    this.columns = columns;
    this.rows = [];
    this.table = details.querySelector("table");
    this.shown = null;
    details.addEventListener("toggle", () => this.render());
  }

  set(rows) {
    this.rows = rows;
    this.render();
  }

  render() {
    if (!this.details.open || this.shown === this.rows) return;
    this.shown = this.rows;
    const head = document.createElement("thead");
    const headRow = head.insertRow();
    for (const column of this.columns) {
      const th = document.createElement("th");
      th.textContent = column.label;
      th.scope = "col";
      headRow.append(th);
    }
    const body = document.createElement("tbody");
    for (const row of this.rows) {
      const tr = body.insertRow();
      for (const column of this.columns) {
        const td = tr.insertCell();
        const value = row[column.field];
        td.textContent = column.format ? column.format(value, row) : value ?? "–";
        if (column.title) td.title = column.title(row) || "";
      }
    }
    this.table.replaceChildren(head, body);
  }

  csv() {
    const quote = (value) => {
      const text = value == null ? "" : String(value);
      return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
    };
    const lines = [
      this.columns.map((column) => quote(column.csv || column.field)).join(","),
      ...this.rows.map((row) => this.columns.map((column) => quote(row[column.field])).join(",")),
    ];
    return `${lines.join("\n")}\n`;
  }

  download(stem) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([this.csv()], { type: "text/csv" }));
    link.download = `${stem}-${this.name}-${new Date().toISOString().slice(0, 19).replaceAll(":", "")}Z.csv`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}
