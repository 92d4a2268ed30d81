// The Patterns tab: the kinds of message the matching records are made of (GET /logs/patterns),
// most records first, each with a sparkline over the range, marked when new in it.

import { count, element, localTime } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

// A bar chart of ``counts`` as an inline SVG, with a text equivalent.
function sparkline(counts) {
  const top = Math.max(1, ...counts);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${counts.length * 3} 20`);
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Records over time: ${counts.join(", ")}`);
  counts.forEach((n, i) => {
    if (!n) return;
    const bar = document.createElementNS(SVG, "rect");
    const height = Math.max(1.5, (20 * n) / top);
    bar.setAttribute("x", i * 3);
    bar.setAttribute("y", 20 - height);
    bar.setAttribute("width", 2.4);
    bar.setAttribute("height", height);
    svg.append(bar);
  });
  return svg;
}

export class Patterns {
  constructor(table, status, onPick) {
    this.body = table.querySelector("tbody");
    this.status = status;
    this.onPick = onPick;
  }

  clear() {
    this.body.replaceChildren();
    this.status.textContent = "Loading…";
  }

  // Show an answer of /logs/patterns; ``since`` (epoch ms) marks the patterns new in the range.
  show(answer, since) {
    this.body.replaceChildren(...answer.patterns.map((pattern) => this.row(pattern, since)));
    const { pending_records: pending, lag_seconds: lag } = answer.mining;
    const waiting = pending ? ` ${count(pending)} records are not mined yet (the oldest ` +
      `arrived ${Math.round(lag)} s ago) and are not counted.` : "";
    this.status.textContent = (answer.patterns.length
      ? `${count(answer.patterns.length)} patterns, most records first.`
      : "No patterns: no mined record matches.") + waiting;
  }

  row(pattern, since) {
    const row = element("tr", "pattern");
    row.dataset.id = pattern.id;
    const fresh = pattern.first_seen_ever && Date.parse(pattern.first_seen_ever) >= since;
    row.append(element("td", "count", count(pattern.count)));
    const chart = element("td", "chart");
    chart.append(sparkline(pattern.counts));
    row.append(chart);
    const template = element("td", "template");
    const show = element("button", "link", pattern.template);
    show.type = "button";
    show.title = "Show the records of this pattern";
    show.addEventListener("click", () => this.onPick(pattern));
    template.append(show);
    if (fresh) template.append(element("span", "new", "new"));
    row.append(template);
    row.append(element("td", "service", pattern.service));
    const last = element("td", "seen");
    const time = element("time", "", localTime(pattern.last_seen));
    time.dateTime = pattern.last_seen;
    last.append(time);
    row.append(last);
    return row;
  }
}
