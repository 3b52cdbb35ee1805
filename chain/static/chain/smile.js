// The expiry's IV smile: mark IV per strike (from the out-of-the-money side, as traders quote
// it), with the bid and ask IVs around it and the forward as a vertical line. uPlot, from npm.
import { chartHeight, COLORS, drawMarks, LiveChart, percentAxis, strikeAxis } from "./charts.js";

const percent = (value) => (value == null ? "–" : `${value.toFixed(1)} %`);

export class Smile {
  constructor(container) {
    this.forward = null;
    this.chart = new LiveChart(container, (width) => ({
      width,
      height: chartHeight(width),
      scales: { x: { time: false } },
      legend: { live: true },
      cursor: { points: { size: 6 } },
      axes: [strikeAxis, percentAxis],
      series: [
        { label: "Strike", value: (u, v) => (v == null ? "–" : v.toLocaleString("en-US")) },
        { label: "Mark IV", stroke: COLORS.mark, width: 2, spanGaps: true, value: (u, v) => percent(v), points: { show: true, size: 4, fill: COLORS.mark } },
        { label: "Bid IV", stroke: COLORS.call, width: 1, dash: [4, 4], spanGaps: true, value: (u, v) => percent(v), points: { show: false } },
        { label: "Ask IV", stroke: COLORS.put, width: 1, dash: [4, 4], spanGaps: true, value: (u, v) => percent(v), points: { show: false } },
      ],
      hooks: { draw: [(u) => drawMarks(u, [{ x: this.forward, label: "F", color: COLORS.accent }])] },
    }));
  }

  // Redrawn at most once a second (a chart that moves faster cannot be read anyway), except for
  // a new expiry (``now``).
  update(rows, forward, now = false) {
    this.forward = forward;
    this.chart.update(smileData(rows, forward), now);
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
