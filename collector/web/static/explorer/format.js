// How times, counts and values read on the page.

const pad = (n, width = 2) => String(n).padStart(width, "0");

// A record time (RFC 3339, UTC) in the viewer's zone: 2026-11-29 10:15:02.123
export function localTime(iso) {
  const date = new Date(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
         `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
         `${pad(date.getMilliseconds(), 3)}`;
}

// The value of a datetime-local input for epoch milliseconds, in the viewer's zone.
export function localInput(ms) {
  const date = new Date(ms);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
         `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function count(n) {
  return n.toLocaleString("en-US");
}

// An element with optional class and text (text, never markup: log text is untrusted).
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
