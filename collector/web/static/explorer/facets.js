// Facets beside the results: counts by service, severity, host and a chosen attribute key for
// the current query, each without its own filter, so that the other values stay in sight.

import { count, element } from "./format.js";
import { LEVELS } from "./query.js";

const SHOWN = 12;

// The facets the explorer shows: what each counts by, which filters it leaves out, the value
// of a stats row, and whether the query selects that value.
export const FACETS = {
  service: { by: () => "service", omit: () => ["service"], value: (row) => row.service,
             selected: (query, value) => query.service.includes(value) },
  severity: { by: () => "severity", omit: () => ["severity", "min_severity"],
              value: (row) => row.severity,
              selected: (query, value) => query.severity.includes(value) ||
                (query.min_severity !== "" &&
                 LEVELS.indexOf(value) >= LEVELS.indexOf(query.min_severity)) },
  host: { by: () => "host", omit: () => ["host"], value: (row) => row.host,
          selected: (query, value) => query.host === value },
  attribute: { by: (query) => `attr.${query.facet}`, omit: (query) => [`attr.${query.facet}`],
               value: (row) => Object.values(row.attributes || {})[0],
               selected: (query, value) => query.attributes.some(
                 ([key, v]) => key === query.facet && v === String(value)) },
};

// Fill the facet ``name``'s list from stats ``rows``; ``onPick(name, value)`` for a click.
export function showFacet(section, name, rows, query, onPick) {
  const facet = FACETS[name];
  const list = section.querySelector("ul");
  const sorted = name === "severity"
    ? rows.slice().sort((a, b) => LEVELS.indexOf(b.severity) - LEVELS.indexOf(a.severity))
    : rows.slice().sort((a, b) => b.count - a.count);
  const items = sorted.slice(0, SHOWN).map((row) => {
    const value = facet.value(row);
    const item = element("li");
    const shown = value === null || value === undefined ? "(none)"
      : typeof value === "string" ? value : JSON.stringify(value);
    const counted = element("span", "count", count(row.count));
    // Strings and numbers make filters; a missing value or an object does not.
    if (typeof value === "string" || typeof value === "number") {
      const button = element("button", `pick${name === "severity" ? ` sev-${value}` : ""}`);
      button.type = "button";
      button.setAttribute("aria-pressed", String(facet.selected(query, value)));
      button.append(element("span", "value", shown), counted);
      button.addEventListener("click", () => onPick(name, value));
      item.append(button);
    } else {
      item.className = "inert";
      item.append(element("span", "value", shown), counted);
    }
    return item;
  });
  if (sorted.length > SHOWN) {
    items.push(element("li", "more", `and ${count(sorted.length - SHOWN)} more`));
  }
  if (!items.length) items.push(element("li", "none", "none"));
  list.replaceChildren(...items);
}
