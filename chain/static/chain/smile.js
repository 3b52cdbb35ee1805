// The expiry's IV smile: mark IV per strike (from the out-of-the-money side, as traders quote
// it), with the bid and ask IVs around it and the forward as a vertical line. uPlot, from npm.
import uPlot from "../vendor/uplot/uPlot.esm.js";

const AXIS = { stroke: "#9aa4b2", grid: { stroke: "#263041", width: 1 }, ticks: { stroke: "#263041", width: 1 } };
const percent = (value) => (value == null ? "–" : `${value.toFixed(1)} %`);

export class Smile {
  constructor(container) {
    this.container = container;
    this.forward = null;
    this.plot = null;
    this.pending = null;
    this.lastDrawn = -Infinity;
    new ResizeObserver(() => this.resize()).observe(container);
  }

  options(width) {
    return {
      width,
      height: Math.max(200, Math.min(320, Math.round(width * 0.6))),
      scales: { x: { time: false } },
      legend: { live: true },
      cursor: { points: { size: 6 } },
      axes: [
        { ...AXIS, values: (u, values) => values.map((v) => v.toLocaleString("en-US")) },
        { ...AXIS, size: 48, values: (u, values) => values.map((v) => `${v.toFixed(0)}%`) },
      ],
      series: [
        { label: "Strike", value: (u, v) => (v == null ? "–" : v.toLocaleString("en-US")) },
        { label: "Mark IV", stroke: "#f0c674", width: 2, spanGaps: true, value: (u, v) => percent(v), points: { show: true, size: 4, fill: "#f0c674" } },
        { label: "Bid IV", stroke: "#5fb878", width: 1, dash: [4, 4], spanGaps: true, value: (u, v) => percent(v), points: { show: false } },
        { label: "Ask IV", stroke: "#e0736b", width: 1, dash: [4, 4], spanGaps: true, value: (u, v) => percent(v), points: { show: false } },
      ],
      hooks: { draw: [(u) => this.drawForward(u)] },
    };
  }

  drawForward(u) {
    if (this.forward == null) return;
    const x = Math.round(u.valToPos(this.forward, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
    const context = u.ctx;
    context.save();
    context.strokeStyle = "#6ea8fe";
    context.setLineDash([2, 3]);
    context.beginPath();
    context.moveTo(x, u.bbox.top);
    context.lineTo(x, u.bbox.top + u.bbox.height);
    context.stroke();
    context.restore();
  }

  // Redrawn at most once a second (a chart that moves faster cannot be read anyway), except for
  // a new expiry (``now``).
  update(rows, forward, now = false) {
    this.pending = { rows, forward };
    const wait = 1000 - (performance.now() - this.lastDrawn);
    if (wait <= 0 || now) this.draw();
    else if (!this.timer) this.timer = setTimeout(() => this.draw(), wait);
  }

  draw() {
    this.timer = null;
    if (!this.pending) return;
    const { rows, forward } = this.pending;
    this.pending = null;
    this.lastDrawn = performance.now();
    this.forward = forward;
    const data = smileData(rows, forward);
    const width = this.container.clientWidth;
    if (!width) return;
    if (!this.plot) this.plot = new uPlot(this.options(width), data, this.container);
    else this.plot.setData(data);
  }

  resize() {
    const width = this.container.clientWidth;
    if (this.plot && width) {
      const options = this.options(width);
      this.plot.setSize({ width, height: options.height });
    } else if (width && this.pending) {
      this.draw();
    }
  }

  clear() {
    if (this.plot) this.plot.setData([[], [], [], []]);
  }
}

// Per strike, the out-of-the-money contract's IVs (the put below the forward, the call above);
// the other side's when that one has none.
export function smileData(rows, forward) {
  const byStrike = new Map();
  for (const row of rows) {
    if (!byStrike.has(row.strike)) byStrike.set(row.strike, {});
    byStrike.get(row.strike)[row.type] = row;
  }
  const strikes = [...byStrike.keys()].sort((a, b) => a - b);
  const pick = (pair, strike, field) => {
    const preferred = forward == null || strike >= forward ? pair.call : pair.put;
    const other = preferred === pair.call ? pair.put : pair.call;
    const value = preferred?.[field] ?? other?.[field];
    return value == null ? null : value * 100;
  };
  return [
    strikes,
    strikes.map((strike) => pick(byStrike.get(strike), strike, "mark_iv")),
    strikes.map((strike) => pick(byStrike.get(strike), strike, "bid_iv")),
    strikes.map((strike) => pick(byStrike.get(strike), strike, "ask_iv")),
  ];
}
