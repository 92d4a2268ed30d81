// The log explorer: the query bar and the URL, the histogram, the results with infinite
// scroll and live tail, the facets, a record's detail, the API key, the keyboard.

import { ApiError, authReason, forgetKey, getJSON, isAbort, keepKey, storedKey } from "./api.js";
import { Detail } from "./detail.js";
import { FACETS, showFacet } from "./facets.js";
import { count, element, localInput } from "./format.js";
import { Histogram } from "./histogram.js";
import { Patterns } from "./patterns.js";
import { bounds, formatAttributes, fromURL, filterParams, interval, isoTime, parseAttributes,
         PRESETS, toURL } from "./query.js";
import { Results } from "./results.js";

const PAGE_SIZE = 200;
const FOLLOW_WAIT = 20;  // seconds a follow request waits for new records
const FOLLOW_LIMIT = 500;
const PATTERNS_LIMIT = 200;
const PATTERN_BUCKETS = 30;
const RETRY_MS = 3000;
const LIVE_HISTOGRAM_MS = 10000;  // how often a live view redraws its histogram, at most
const $ = (selector) => document.querySelector(selector);

let query = fromURL(location.search);
let search = null;  // the AbortController of the current search's requests
let nextCursor = null;
let afterId = null;  // where the live tail follows from
let loadingPage = false;
let total = null;  // records in range, from the histogram
let live = false;
let paused = false;
let buffered = [];  // records that arrived while paused
let tail = null;  // the AbortController of the live tail
let redraw = null;  // the timer of the live view's next histogram

const histogram = new Histogram($("#histogram"), $("#histogram-readout"), narrow);
const results = new Results($("#results"), openRecord);
const patterns = new Patterns($("#patterns"), $("#patterns-status"), (pattern) => {
  // A pattern picked: its records, in the Records tab.
  query.pattern = String(pattern.id);
  query.view = "records";
  queryToForm();
  runSearch();
});
const detail = new Detail($("#detail"), () => {
  query.record = "";
  history.replaceState(null, "", toURL(query));
  const row = results.current();
  if (row) row.focus();
});

// The form and the query

const FIELD_OF = { q: "q", service: "service", min_severity: "min_severity", since: "since",
                   until: "until", host: "host", trace_id: "trace_id", severity: "levels" };

function queryToForm() {
  $("#q").value = query.q;
  $("#service").value = query.service.join(", ");
  $("#min_severity").value = query.min_severity;
  const range = $("#range");
  if (query.range !== "custom" && !PRESETS.includes(query.range) &&
      !range.querySelector(`option[value="${query.range}"]`)) {
    range.add(new Option(`Last ${query.range}`, query.range), range.options.length - 1);
  }
  range.value = query.range;
  $("#since").value = query.since ? localInput(Date.parse(query.since)) : "";
  $("#until").value = query.until ? localInput(Date.parse(query.until)) : "";
  for (const field of document.querySelectorAll(".field.custom")) {
    field.hidden = query.range !== "custom";
  }
  $("#host").value = query.host;
  $("#trace_id").value = query.trace_id;
  $("#attributes").value = formatAttributes(query.attributes);
  $("#facet-key").value = query.facet;
  const levels = $("#levels");
  levels.replaceChildren();
  levels.hidden = !query.severity.length && !query.pattern;
  if (query.pattern) {
    const chip = element("button", "chip pattern", `Pattern ${query.pattern} ×`);
    chip.type = "button";
    chip.setAttribute("aria-label", `Remove the filter pattern ${query.pattern}`);
    chip.addEventListener("click", () => {
      query.pattern = "";
      queryToForm();
      runSearch();
    });
    levels.append(chip);
  }
  for (const [view, other] of [["records", "patterns"], ["patterns", "records"]]) {
    if (query.view !== view) continue;
    $(`#tab-${view}`).setAttribute("aria-selected", "true");
    $(`#tab-${view}`).tabIndex = 0;
    $(`#tab-${other}`).setAttribute("aria-selected", "false");
    $(`#tab-${other}`).tabIndex = -1;
    $(`#${view}-panel`).hidden = false;
    $(`#${other}-panel`).hidden = true;
  }
  for (const level of query.severity) {
    const chip = element("button", `chip sev-${level}`, `Severity ${level} ×`);
    chip.type = "button";
    chip.setAttribute("aria-label", `Remove the filter severity ${level}`);
    chip.addEventListener("click", () => {
      query.severity = query.severity.filter((other) => other !== level);
      queryToForm();
      runSearch();
    });
    levels.append(chip);
  }
}

// The query the form holds; null (and the field marked) when the attributes do not parse.
function formToQuery() {
  const next = { ...query };
  next.q = $("#q").value;
  next.service = $("#service").value.split(",").map((s) => s.trim()).filter(Boolean);
  next.min_severity = $("#min_severity").value;
  next.range = $("#range").value;
  const keep = (input, previous) => {
    if (!input.value) return "";
    // An unchanged field keeps the exact time it came from (a zoom's milliseconds).
    if (previous && input.value === localInput(Date.parse(previous))) return previous;
    return isoTime(new Date(input.value).getTime());
  };
  next.since = next.range === "custom" ? keep($("#since"), query.since) : "";
  next.until = next.range === "custom" ? keep($("#until"), query.until) : "";
  next.host = $("#host").value.trim();
  next.trace_id = $("#trace_id").value.trim();
  const { pairs, bad } = parseAttributes($("#attributes").value);
  if (bad.length) {
    showQueryError(`attributes: write key=value, not ${JSON.stringify(bad[0])}`, "attributes");
    return null;
  }
  next.attributes = pairs;
  return next;
}

function showQueryError(text, field) {
  $("#query-error").textContent = text;
  for (const marked of document.querySelectorAll("[aria-invalid='true']")) {
    marked.removeAttribute("aria-invalid");
  }
  const input = field && document.getElementById(field);
  if (input) input.setAttribute("aria-invalid", "true");
}

// Searching

function runSearch({ push = true } = {}) {
  if (search) search.abort();
  stopTail();
  search = new AbortController();
  const { signal } = search;
  showQueryError("", null);
  results.clear();
  nextCursor = null;
  afterId = null;
  total = null;
  buffered = [];  // held back for the previous query
  showPaused();
  $("#results-end").textContent = "Loading…";
  $("#status").textContent = "";
  $("#results-section").setAttribute("aria-busy", "true");
  $("#histogram").setAttribute("aria-busy", "true");
  if (push && toURL(query) !== location.pathname + location.search) {
    history.pushState(null, "", toURL(query));
  }
  $("#forget-key").hidden = !storedKey();
  // The facets wait for the results and the histogram: on a large store, counting by host or
  // by an attribute reads every record of the range and would slow the first two down.
  const listed = query.view === "patterns" ? loadPatterns(signal) : firstPage(signal);
  Promise.all([listed, loadHistogram(signal)]).then(() => {
    if (signal.aborted) return;
    Promise.all(Object.keys(FACETS).map((name) => loadFacet(name, signal))).then(() => {
      if (!signal.aborted) performance.mark("explorer:facets");
    });
  });
  if (query.record && !detail.isOpen) openRecordById(query.record, signal);
}

async function firstPage(signal) {
  const params = filterParams(query);
  params.set("limit", PAGE_SIZE);
  try {
    const body = await getJSON("/logs", params, { signal });
    results.add(body.items);
    nextCursor = body.next_cursor;
    afterId = body.next_after_id;
    pageLoaded();
    performance.mark("explorer:first-results");
    if (live) startTail();
    fillViewport();
  } catch (error) {
    failed(error, "results");
  }
}

async function loadPatterns(signal) {
  const [since] = bounds(query);
  const params = filterParams(query);
  params.set("limit", PATTERNS_LIMIT);
  params.set("buckets", PATTERN_BUCKETS);
  patterns.clear();
  try {
    const body = await getJSON("/logs/patterns", params, { signal });
    patterns.show(body, since);
    $("#results-section").setAttribute("aria-busy", "false");
    $("#results-end").textContent = "";
    performance.mark("explorer:patterns");
  } catch (error) {
    $("#patterns-status").textContent = "";
    failed(error, "results");
  }
}

function showView(view) {
  if (query.view === view) return;
  if (live) setLive(false);  // the live tail follows records
  query.view = view;
  queryToForm();
  runSearch();
}

$("#tab-records").addEventListener("click", () => showView("records"));
$("#tab-patterns").addEventListener("click", () => showView("patterns"));
$(".tabs").addEventListener("keydown", (event) => {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  event.preventDefault();
  showView(query.view === "records" ? "patterns" : "records");
  $(`#tab-${query.view}`).focus();
});

async function nextPage() {
  if (!nextCursor || loadingPage || !search || query.view !== "records") return;
  loadingPage = true;
  const { signal } = search;
  const params = filterParams(query);
  params.set("limit", PAGE_SIZE);
  params.set("cursor", nextCursor);
  try {
    const body = await getJSON("/logs", params, { signal });
    results.add(body.items);
    nextCursor = body.next_cursor;
    pageLoaded();
    loadingPage = false;
    fillViewport();
  } catch (error) {
    loadingPage = false;
    failed(error, "results");
  }
}

function pageLoaded() {
  $("#results-section").setAttribute("aria-busy", "false");
  $("#results-end").textContent = nextCursor ? "Loading more as you scroll…"
    : results.size ? "End of the results."
      : "No records match: try a wider time range or fewer filters.";
  showStatus();
}

function showStatus(extra = "") {
  $("#status").textContent = results.summary(total) + extra;
}

// Load pages until the end of the list is out of sight (or there is no more).
const sentinel = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) nextPage();
}, { rootMargin: "0px 0px 600px 0px" });
sentinel.observe($("#results-end"));

function fillViewport() {
  const end = $("#results-end").getBoundingClientRect();
  if (nextCursor && end.top < window.innerHeight + 600) nextPage();
}

async function loadHistogram(signal) {
  const [since, until] = bounds(query);
  const chosen = interval(since, until);
  const params = filterParams(query);
  params.set("by", "severity");
  params.set("interval", chosen[0]);
  params.set("fill", "true");
  try {
    const body = await getJSON("/logs/stats", params, { signal });
    total = body.total;
    histogram.show(body.counts, chosen, since, until);
    $("#histogram").setAttribute("aria-busy", "false");
    performance.mark("explorer:histogram");
    if ($("#results-section").getAttribute("aria-busy") === "false") showStatus();
  } catch (error) {
    if (!isAbort(error)) histogram.message("No histogram for this query.");
    $("#histogram").setAttribute("aria-busy", "false");
    failed(error, "histogram");
  }
}

async function loadFacet(name, signal) {
  const facet = FACETS[name];
  const section = document.querySelector(`.facet[data-facet="${name}"]`);
  if (name === "attribute") {
    section.querySelector(".facet-error").textContent = "";
    if (!query.facet) {
      section.querySelector("ul").replaceChildren();
      return;
    }
  }
  const params = filterParams(query, facet.omit(query));
  params.set("by", facet.by(query));
  try {
    const body = await getJSON("/logs/stats", params, { signal });
    showFacet(section, name, body.counts, query, pick);
    if (name === "service") {
      $("#service-list").replaceChildren(...body.counts.map((row) => new Option(row.service)));
    }
  } catch (error) {
    if (name === "attribute" && error instanceof ApiError && error.status === 400) {
      section.querySelector(".facet-error").textContent = error.message;
      return;
    }
    failed(error, "facet");
  }
}

// A facet's value clicked: add it to the query, or take it out when it is in.
function pick(name, value) {
  const toggle = (values, item) => (values.includes(item)
    ? values.filter((other) => other !== item) : [...values, item]);
  if (name === "service") query.service = toggle(query.service, value);
  if (name === "severity") {
    query.severity = toggle(query.severity, value);
    query.min_severity = "";
  }
  if (name === "host") query.host = query.host === value ? "" : value;
  if (name === "attribute") {
    const text = String(value);
    const present = query.attributes.some(([k, v]) => k === query.facet && v === text);
    query.attributes = present
      ? query.attributes.filter(([k, v]) => !(k === query.facet && v === text))
      : [...query.attributes.filter(([k]) => k !== query.facet), [query.facet, text]];
  }
  queryToForm();
  runSearch();
}

// A range chosen on the histogram (a drag or a bar): search it.
function narrow(since, until) {
  if (live) setLive(false);
  query.range = "custom";
  query.since = isoTime(since);
  query.until = isoTime(until);
  queryToForm();
  runSearch();
}

// What went wrong, said where it matters: a bad query by its field, a missing key in the key
// dialog, anything else in the status line.
function failed(error, where) {
  if (isAbort(error)) return;
  if (!(error instanceof ApiError)) {
    $("#status").textContent = `The collector could not be reached (${error.message}).`;
    return;
  }
  if (error.isAuth) {
    $("#results-section").setAttribute("aria-busy", "false");
    $("#results-end").textContent = "";
    askForKey(error);
    return;
  }
  if (error.status === 400) {
    const parameter = error.body.parameter || "";
    const field = parameter.startsWith("attr.") || parameter === "attr" ? "attributes"
      : parameter === "interval" ? "range" : FIELD_OF[parameter];
    showQueryError(error.message, field);
    if (where === "results") {
      $("#results-section").setAttribute("aria-busy", "false");
      $("#results-end").textContent = "";
    }
    return;
  }
  $("#status").textContent = `The collector answered ${error.status}: ${error.message}`;
}

// The API key

function askForKey(error) {
  const dialog = $("#key-dialog");
  if (error.code === "invalid_api_key") forgetKey();
  $("#forget-key").hidden = !storedKey();
  if (dialog.open) return;
  if (search) search.abort();
  stopTail();
  $("#key-reason").textContent = authReason(error);
  $("#key-input").value = "";
  $("#status").textContent = authReason(error);
  dialog.showModal();
}

$("#key-form").addEventListener("submit", () => {
  const key = $("#key-input").value.trim();
  if (key) {
    keepKey(key);
    // The dialog closes first (method="dialog"), then the search runs with the key.
    setTimeout(() => runSearch({ push: false }), 0);
  }
});
$("#key-cancel").addEventListener("click", () => $("#key-dialog").close());
$("#forget-key").addEventListener("click", () => {
  forgetKey();
  runSearch({ push: false });
});

// Live tail

function setLive(on) {
  live = on;
  $("#live").setAttribute("aria-pressed", String(on));
  $("#live").textContent = on ? "Stop live" : "Live";
  $("#pause").hidden = !on;
  if (!on) {
    stopTail();
    resume();
    return;
  }
  if (query.view !== "records" || (query.range === "custom" && query.until)) {
    query.until = "";  // a live view runs up to now, and follows records
    query.view = "records";
    queryToForm();
    runSearch();
  } else if (afterId !== null) {
    startTail();
  }
}

function startTail() {
  stopTail();
  tail = new AbortController();
  follow(tail);
}

function stopTail() {
  if (tail) tail.abort();
  tail = null;
}

async function follow(controller) {
  while (live && tail === controller) {
    const params = filterParams(query, ["until"]);
    params.set("after_id", afterId);
    params.set("wait", FOLLOW_WAIT);
    params.set("limit", FOLLOW_LIMIT);
    let body;
    try {
      body = await getJSON("/logs", params, { signal: controller.signal });
    } catch (error) {
      if (isAbort(error)) return;
      failed(error, "tail");
      if (error instanceof ApiError && (error.isAuth || error.status === 400)) return;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    if (tail !== controller) return;
    afterId = body.next_after_id;
    if (!body.items.length) continue;
    if (paused) {
      buffered.push(...body.items);
      showPaused();
    } else {
      const added = results.add(body.items, true);
      if (total !== null) total += added;
      showStatus();
    }
    if (!redraw && search) {
      const { signal } = search;
      redraw = setTimeout(() => {
        redraw = null;
        if (live && !signal.aborted) loadHistogram(signal);
      }, LIVE_HISTOGRAM_MS);
    }
  }
}

function showPaused() {
  $("#pause").textContent = paused ? `Resume (${count(buffered.length)} new)` : "Pause";
  $("#pause").setAttribute("aria-pressed", String(paused));
  if (paused) showStatus(`; ${count(buffered.length)} new while paused`);
}

function resume() {
  paused = false;
  if (buffered.length) {
    const added = results.add(buffered, true);
    if (total !== null) total += added;
    buffered = [];
  }
  showPaused();
  showStatus();
}

$("#live").addEventListener("click", () => setLive(!live));
$("#pause").addEventListener("click", () => {
  if (paused) {
    resume();
  } else {
    paused = true;
    showPaused();
  }
});

// A record's detail

function openRecord(record) {
  query.record = String(record.id);
  history.replaceState(null, "", toURL(query));
  detail.show(record, query);
}

async function openRecordById(id, signal) {
  if (!/^\d+$/.test(id)) return;
  try {
    const record = await getJSON(`/logs/${id}`, null, { signal });
    detail.show(record, query);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("#status").textContent = `There is no record ${id}.`;
      return;
    }
    failed(error, "detail");
  }
}

// Events

$("#query").addEventListener("submit", (event) => {
  event.preventDefault();
  const next = formToQuery();
  if (!next) return;
  query = next;
  runSearch();
});
$("#range").addEventListener("change", () => {
  const custom = $("#range").value === "custom";
  for (const field of document.querySelectorAll(".field.custom")) field.hidden = !custom;
  if (custom) {
    const [since, until] = bounds(query);
    if (!$("#since").value) $("#since").value = localInput(since);
    if (!$("#until").value && !live) $("#until").value = localInput(until);
    $("#since").focus();
    return;
  }
  $("#query").requestSubmit();
});
$("#min_severity").addEventListener("change", () => $("#query").requestSubmit());
$("#facet-key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  query.facet = $("#facet-key").value.trim();
  history.replaceState(null, "", toURL(query));
  loadFacet("attribute", search ? search.signal : undefined);
});
window.addEventListener("popstate", () => {
  query = fromURL(location.search);
  detail.hide();
  queryToForm();
  runSearch({ push: false });
});

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select");
  if ($("#key-dialog").open) return;
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    $("#q").focus();
    $("#q").select();
  } else if (event.key === "Escape" && detail.isOpen) {
    event.preventDefault();
    detail.close();
  } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && !typing &&
             !event.target.closest("#facets, #query")) {
    const row = results.neighbour(event.key === "ArrowDown" ? 1 : -1);
    if (!row) return;
    event.preventDefault();
    results.focus(row);
    row.scrollIntoView({ block: "nearest" });
    if (detail.isOpen) results.open(row);
    fillViewport();
  }
});

queryToForm();
runSearch({ push: false });
