// The read API as the page calls it: the reader's key in a header (never in a URL), errors
// thrown with the API's own body.

const KEY_NAME = "collector.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }

  get code() {
    return this.body.error || "";
  }

  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function keepKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

export function isAbort(error) {
  return error && error.name === "AbortError";
}

// GET path?params as JSON; ApiError for an answer other than 2xx.
export async function getJSON(path, params, { signal } = {}) {
  const query = params ? params.toString() : "";
  const headers = { Accept: "application/json" };
  const key = storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(query ? `${path}?${query}` : path,
                               { headers, signal, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    if (isAbort(error)) throw error;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// What a reader must do about a 401 or 403, in words.
export function authReason(error) {
  if (error.code === "insufficient_scope") {
    const scope = error.body.required_scope || "read";
    return `The API key given lacks the ${scope} scope. The explorer needs a key with the ` +
           `${scope} scope (or admin).`;
  }
  if (error.code === "invalid_api_key") {
    return "The collector refused the API key: it is unknown or revoked. Give a key with the " +
           "read scope.";
  }
  return "This collector requires an API key for every search: give one with the read scope.";
}
