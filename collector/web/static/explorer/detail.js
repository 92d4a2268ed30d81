// A record's detail: every field, attributes as a tree, copy as JSON, links to the same
// trace, the same service around this time, this host, and the same pattern.

import { element, localTime } from "./format.js";
import { emptyQuery, isoTime, toURL } from "./query.js";

const FIELDS = ["id", "timestamp", "received_at", "service", "severity", "host", "trace_id",
                "span_id", "event_id", "api_key_id", "pattern_id"];
const AROUND_MS = 5 * 60 * 1000;
const TRACE_MS = 60 * 60 * 1000;

export class Detail {
  constructor(panel, onClose) {
    this.panel = panel;
    this.onClose = onClose;
    this.record = null;
    panel.querySelector("#detail-close").addEventListener("click", () => this.close());
    panel.querySelector("#copy-json").addEventListener("click", () => this.copy());
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  // Show ``record``; ``query`` is the explorer's, for the "this host" link's time range.
  show(record, query) {
    this.record = record;
    const $ = (selector) => this.panel.querySelector(selector);
    $("#detail-title").textContent = `Record ${record.id}`;
    const fields = $("#detail-fields");
    fields.replaceChildren();
    for (const name of FIELDS) {
      const value = record[name];
      const shown = element("dd");
      if (value === null || value === undefined) {
        shown.append(element("span", "none", "none"));
      } else if (name === "timestamp" || name === "received_at") {
        const time = element("time", "", localTime(value));
        time.dateTime = value;
        shown.append(time, element("span", "utc", ` ${value} UTC`));
      } else {
        shown.textContent = String(value);
      }
      fields.append(element("dt", "", name), shown);
    }
    $("#detail-message").textContent = record.message;
    const attributes = $("#detail-attributes");
    attributes.replaceChildren(record.attributes && Object.keys(record.attributes).length
      ? tree(record.attributes) : element("p", "none", "none"));
    $("#copy-status").textContent = "";

    const at = Date.parse(record.timestamp);
    const link = (selector, shown, changes) => {
      const anchor = $(selector);
      anchor.hidden = !shown;
      if (shown) anchor.href = toURL({ ...emptyQuery(), ...changes });
    };
    link("#same-trace", Boolean(record.trace_id), {
      trace_id: record.trace_id, range: "custom", since: isoTime(at - TRACE_MS),
      until: isoTime(at + TRACE_MS) });
    link("#same-service", true, {
      service: [record.service], range: "custom", since: isoTime(at - AROUND_MS),
      until: isoTime(at + AROUND_MS), record: String(record.id) });
    link("#same-host", Boolean(record.host), {
      host: record.host, range: query.range, since: query.since, until: query.until });
    link("#same-pattern", record.pattern_id !== null && record.pattern_id !== undefined, {
      pattern: String(record.pattern_id), range: query.range, since: query.since,
      until: query.until });
    this.panel.hidden = false;
    document.body.classList.add("with-detail");
  }

  close() {
    if (!this.isOpen) return;
    this.hide();
    this.onClose();
  }

  // Close without telling the explorer (it is showing another view already).
  hide() {
    this.panel.hidden = true;
    this.record = null;
    document.body.classList.remove("with-detail");
  }

  async copy() {
    const text = JSON.stringify(this.record, null, 2);
    const status = this.panel.querySelector("#copy-status");
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied";
    } catch {
      // No clipboard permission (an insecure origin, say): the old way, through a selection.
      const area = element("textarea", "offscreen");
      area.value = text;
      area.setAttribute("aria-hidden", "true");
      document.body.append(area);
      area.select();
      const copied = document.execCommand("copy");
      area.remove();
      status.textContent = copied ? "Copied" : "Copy failed: select the text instead";
    }
  }
}

// Nested attributes as nested lists; an object or array folds under its key.
function tree(value) {
  const list = element("ul", "tree");
  for (const [key, inner] of Object.entries(value)) {
    const item = element("li");
    if (inner !== null && typeof inner === "object") {
      const details = element("details");
      details.open = true;
      const size = Array.isArray(inner) ? `[${inner.length}]` : `{${Object.keys(inner).length}}`;
      const summary = element("summary");
      summary.append(element("span", "key", key), element("span", "size", ` ${size}`));
      details.append(summary, tree(inner));
      item.append(details);
    } else {
      item.append(element("span", "key", key), element("span", "colon", ": "),
                  element("span", `value ${inner === null ? "null" : typeof inner}`,
                          inner === null ? "null" : JSON.stringify(inner)));
    }
    list.append(item);
  }
  return list;
}
