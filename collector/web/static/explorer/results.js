// The list of records, newest first: severity colours, local time with UTC on hover, long
// messages folded, and the keyboard's current record.

import { count, element, localTime } from "./format.js";

const FOLD_CHARS = 300;
const FOLD_LINES = 3;

export class Results {
  // ``onOpen(record)`` opens a record's detail.
  constructor(list, onOpen) {
    this.list = list;
    this.onOpen = onOpen;
    this.records = new Map();  // id -> record, of the rows shown
    list.addEventListener("click", (event) => {
      if (event.target.closest("button.fold")) return;
      const row = event.target.closest("li.record");
      if (row) this.open(row);
    });
    list.addEventListener("keydown", (event) => {
      const row = event.target.closest("li.record");
      if (row && event.target === row && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        this.open(row);
      }
    });
  }

  clear() {
    this.records.clear();
    this.list.replaceChildren();
  }

  get size() {
    return this.records.size;
  }

  // Add records at the end (a next page) or, with ``atTop``, above the others (newer ones,
  // given oldest first). A record already shown is not shown again.
  add(records, atTop = false) {
    const fresh = records.filter((record) => !this.records.has(record.id));
    const rows = fresh.map((record) => {
      this.records.set(record.id, record);
      return this.row(record);
    });
    if (atTop) {
      const current = this.current();
      this.list.prepend(...rows.reverse());
      if (current) current.tabIndex = 0;
    } else {
      this.list.append(...rows);
    }
    if (!this.current() && this.list.firstElementChild) this.list.firstElementChild.tabIndex = 0;
    return fresh.length;
  }

  row(record) {
    const row = element("li", `record sev-${record.severity}`);
    row.tabIndex = -1;
    row.dataset.id = record.id;
    const time = element("time", "time", localTime(record.timestamp));
    time.dateTime = record.timestamp;
    time.title = `${record.timestamp} (UTC)`;
    const message = element("span", "message");
    row.append(time, element("span", "severity", record.severity),
               element("span", "service", record.service),
               element("span", "host", record.host || ""), message);
    const lines = record.message.split("\n");
    if (record.message.length > FOLD_CHARS || lines.length > FOLD_LINES) {
      const short = lines.slice(0, FOLD_LINES).join("\n").slice(0, FOLD_CHARS);
      message.textContent = `${short}…`;
      const fold = element("button", "fold", "more");
      fold.type = "button";
      fold.setAttribute("aria-expanded", "false");
      fold.setAttribute("aria-label", `Show the whole message of record ${record.id}`);
      fold.addEventListener("click", () => {
        const open = fold.getAttribute("aria-expanded") !== "true";
        fold.setAttribute("aria-expanded", String(open));
        fold.textContent = open ? "less" : "more";
        message.textContent = open ? record.message : `${short}…`;
      });
      row.append(fold);
    } else {
      message.textContent = record.message;
    }
    return row;
  }

  current() {
    return this.list.querySelector("li.record[tabindex='0']");
  }

  // Make ``row`` the keyboard's current record and focus it.
  focus(row) {
    if (!row) return;
    for (const other of this.list.querySelectorAll("li.record[tabindex='0']")) {
      other.tabIndex = -1;
    }
    row.tabIndex = 0;
    row.focus();
  }

  // The row ``step`` rows away from the current one (or the first).
  neighbour(step) {
    const current = this.current();
    if (!current) return this.list.firstElementChild;
    return step > 0 ? current.nextElementSibling : current.previousElementSibling;
  }

  open(row) {
    this.focus(row);
    for (const selected of this.list.querySelectorAll("li.selected")) {
      selected.classList.remove("selected");
    }
    row.classList.add("selected");
    this.onOpen(this.records.get(Number(row.dataset.id)));
  }

  summary(total) {
    return total === null ? `${count(this.size)} shown`
      : `${count(total)} records in range, ${count(this.size)} shown`;
  }
}
