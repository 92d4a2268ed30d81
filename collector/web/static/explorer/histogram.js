// The histogram of matching records over the range, stacked by severity (uPlot), with drag
// to zoom and click to narrow.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { LEVELS } from "./query.js";
import { count, element } from "./format.js";

// The severity colours of the stylesheet (explorer.css), for the canvas.
export const COLOURS = {
  TRACE: "#6b7280", DEBUG: "#2563eb", INFO: "#15803d", NOTICE: "#0e7490",
  WARN: "#b45309", ERROR: "#dc2626", CRITICAL: "#9d174d", FATAL: "#581c87",
};
const HEIGHT = 150;

export class Histogram {
  // ``onRange(sinceMs, untilMs)`` is called for a zoom or a click on a bar.
  constructor(container, readout, onRange) {
    this.container = container;
    this.readout = readout;
    this.onRange = onRange;
    this.plot = null;
    this.zoomedAt = -Infinity;
    window.addEventListener("resize", () => this.resize());
  }

  // Draw the stats API's rows (start, severity, count; filled) in buckets of ``interval``
  // ([name, seconds]) over [sinceMs, untilMs].
  show(rows, [name, seconds], sinceMs, untilMs) {
    const starts = [...new Set(rows.map((row) => Date.parse(row.start) / 1000))].sort(
      (a, b) => a - b);
    const column = new Map(starts.map((start, i) => [start, i]));
    const counts = Object.fromEntries(LEVELS.map((level) => [level, starts.map(() => 0)]));
    for (const row of rows) {
      if (row.severity) counts[row.severity][column.get(Date.parse(row.start) / 1000)] += row.count;
    }
    const levels = LEVELS.filter((level) => counts[level].some((n) => n > 0));
    // Stacked: each level's bar reaches the sum of it and the levels below; the tallest is
    // drawn first, and each lower one over it.
    const stacked = [];
    let running = starts.map(() => 0);
    for (const level of levels) {
      running = running.map((n, i) => n + counts[level][i]);
      stacked.push(running);
    }
    this.data = { starts, counts, levels, seconds };
    const data = [starts, ...stacked.slice().reverse()];
    const series = [{}, ...levels.slice().reverse().map((level) => ({
      label: level, fill: COLOURS[level], stroke: COLOURS[level], width: 0,
      paths: uPlot.paths.bars({ size: [0.92, 60], align: 1 }), points: { show: false },
    }))];
    this.destroy();
    this.container.replaceChildren();
    this.zoomedAt = -Infinity;
    const totals = starts.map((_, i) => levels.reduce((sum, level) => sum + counts[level][i], 0));
    const opts = {
      width: this.container.clientWidth || 800,
      height: HEIGHT,
      series,
      legend: { show: false },
      padding: [8, 8, 0, 0],
      scales: {
        x: { time: true, range: () => [sinceMs / 1000, untilMs / 1000] },
        y: { range: (u, min, max) => [0, Math.max(4, max * 1.05)] },
      },
      axes: [
        { stroke: "#334155", grid: { stroke: "#e2e8f0" }, ticks: { stroke: "#cbd5e1" } },
        { stroke: "#334155", grid: { stroke: "#e2e8f0" }, ticks: { stroke: "#cbd5e1" },
          size: 56, values: (u, values) => values.map((v) => count(v)) },
      ],
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      hooks: {
        setSelect: [(u) => this.selected(u)],
        setCursor: [(u) => this.hover(u)],
      },
    };
    this.plot = new uPlot(opts, data, this.container);
    this.plot.over.addEventListener("click", () => this.clicked());
    const total = totals.reduce((a, b) => a + b, 0);
    this.container.setAttribute("aria-label", `Histogram: ${count(total)} records in ` +
      `${starts.length} buckets of ${name}, by severity`);
    this.readout.textContent = "Drag across the chart to zoom, click a bar to narrow to it.";
  }

  bucketAt(idx) {
    return idx === null || idx === undefined || !this.data ? null : this.data.starts[idx];
  }

  selected(u) {
    if (u.select.width < 3) return;
    const since = u.posToVal(u.select.left, "x") * 1000;
    const until = u.posToVal(u.select.left + u.select.width, "x") * 1000;
    this.zoomedAt = performance.now();
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.onRange(Math.floor(since), Math.ceil(until));
  }

  clicked() {
    if (performance.now() - this.zoomedAt < 500) return;  // the click that ends a drag
    const start = this.bucketAt(this.plot.cursor.idx);
    if (start === null) return;
    this.onRange(start * 1000, (start + this.data.seconds) * 1000);
  }

  hover(u) {
    const start = this.bucketAt(u.cursor.idx);
    if (start === null) return;
    const i = u.cursor.idx;
    const parts = this.data.levels.filter((level) => this.data.counts[level][i] > 0)
      .map((level) => `${level} ${count(this.data.counts[level][i])}`);
    const total = this.data.levels.reduce((sum, level) => sum + this.data.counts[level][i], 0);
    const from = new Date(start * 1000).toLocaleString();
    this.readout.textContent = `${from}: ${count(total)} records` +
      (parts.length ? ` (${parts.join(", ")})` : "");
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.container.clientWidth, height: HEIGHT });
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  // An error or nothing to draw: say so in place of the chart.
  message(text) {
    this.destroy();
    this.container.replaceChildren(element("p", "chart-message", text));
  }
}
