// The explorer's query: read from and written to the page's URL (so a view can be bookmarked
// and shared), and turned into the read API's parameters.

export const LEVELS = ["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL"];
export const PRESETS = ["15m", "1h", "6h", "24h", "7d", "30d"];
export const DEFAULT_RANGE = "24h";
// The stats API's bucket widths (read.params.INTERVALS), in seconds.
const INTERVALS = [["1s", 1], ["5s", 5], ["10s", 10], ["30s", 30], ["1m", 60], ["5m", 300],
                   ["10m", 600], ["15m", 900], ["30m", 1800], ["1h", 3600], ["3h", 10800],
                   ["6h", 21600], ["12h", 43200], ["1d", 86400]];
const MAX_BARS = 150;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const RELATIVE = /^(\d{1,9})([smhdw])$/;

export function emptyQuery() {
  return { q: "", service: [], min_severity: "", severity: [], range: DEFAULT_RANGE,
           since: "", until: "", host: "", trace_id: "", attributes: [], facet: "",
           record: "", pattern: "", view: "records" };
}

function list(value) {
  return (value || "").split(",").map((item) => item.trim()).filter(Boolean);
}

// The query a URL's search part names.
export function fromURL(search) {
  const params = new URLSearchParams(search);
  const query = emptyQuery();
  query.q = params.get("q") || "";
  query.service = params.getAll("service").flatMap(list);
  query.severity = params.getAll("severity").flatMap(list).map((s) => s.toUpperCase());
  query.min_severity = (params.get("min_severity") || "").toUpperCase();
  query.host = params.get("host") || "";
  query.trace_id = params.get("trace_id") || "";
  query.facet = params.get("facet") || "";
  query.record = params.get("record") || "";
  query.pattern = params.get("pattern") || "";
  query.view = params.get("view") === "patterns" ? "patterns" : "records";
  const since = params.get("since") || "";
  const until = params.get("until") || "";
  if (!until && (RELATIVE.test(since) || !since)) {
    query.range = since || DEFAULT_RANGE;
  } else {
    query.range = "custom";
    query.since = since;
    query.until = until;
  }
  for (const [name, value] of params) {
    if (name.startsWith("attr.")) query.attributes.push([name.slice(5), value]);
  }
  return query;
}

// The read API's filters of ``query``, leaving out the names in ``omit``.
export function filterParams(query, omit = []) {
  const params = new URLSearchParams();
  const skip = new Set(omit);
  const add = (name, value) => {
    if (value && !skip.has(name)) params.set(name, value);
  };
  add("q", query.q.trim());
  add("service", query.service.join(","));
  add("min_severity", query.min_severity);
  add("severity", query.severity.join(","));
  if (query.range === "custom") {
    add("since", query.since);
    add("until", query.until);
  } else {
    add("since", query.range);
  }
  add("host", query.host.trim());
  add("trace_id", query.trace_id.trim());
  add("pattern", query.pattern);
  for (const [key, value] of query.attributes) {
    if (!skip.has(`attr.${key}`)) params.append(`attr.${key}`, value);
  }
  return params;
}

// The page's own URL for ``query``: the API's names, plus the facet and the open record.
export function toURL(query) {
  const params = filterParams(query);
  if (query.facet) params.set("facet", query.facet);
  if (query.record) params.set("record", query.record);
  if (query.view === "patterns") params.set("view", "patterns");
  const search = params.toString();
  return search ? `/?${search}` : "/";
}

// [since, until] of ``query`` in epoch milliseconds, relative times counted from ``now``.
export function bounds(query, now = Date.now()) {
  if (query.range !== "custom") return [now - relativeMs(query.range), now];
  const since = query.since ? Date.parse(query.since) : now - relativeMs(DEFAULT_RANGE);
  const until = query.until ? Date.parse(query.until) : now;
  return [since, until];
}

function relativeMs(text) {
  const match = RELATIVE.exec(text);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]] * 1000 : 86400000;
}

// The narrowest bucket width giving at most MAX_BARS bars over [since, until].
export function interval(since, until) {
  const seconds = Math.max(1, (until - since) / 1000);
  const found = INTERVALS.find(([, width]) => seconds / width <= MAX_BARS);
  return found || INTERVALS[INTERVALS.length - 1];
}

// "key=value" pairs of the attributes field; a value with spaces is double-quoted.
export function parseAttributes(text) {
  const pairs = [];
  const bad = [];
  const pattern = /([^\s=]+)=(?:"([^"]*)"|(\S*))|(\S+)/g;
  for (const match of text.matchAll(pattern)) {
    if (match[4] !== undefined) bad.push(match[4]);
    else pairs.push([match[1], match[2] !== undefined ? match[2] : match[3]]);
  }
  return { pairs, bad };
}

export function formatAttributes(pairs) {
  return pairs.map(([key, value]) => (/[\s"]/.test(value) || value === ""
    ? `${key}="${value.replaceAll('"', "")}"` : `${key}=${value}`)).join(" ");
}

// An epoch-milliseconds time as RFC 3339 in UTC, to the millisecond.
export function isoTime(ms) {
  return new Date(ms).toISOString();
}
