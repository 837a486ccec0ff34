// The API client: same origin, the key from this tab's sessionStorage on every call, the contract's
// error body turned into an ApiError with a message for a person.

const KEY = "baton.api_key";
// The API's root is the page's folder: /ui on the local stack, /<stage>/ui behind API Gateway's URL.
const API_ROOT = new URL("./", location.href);

/** The absolute URL of an API path ("/runs/..."), under the API's root. */
export function apiUrl(apiPath) {
  return new URL(String(apiPath).replace(/^\/+/, ""), API_ROOT).href;
}
let onUnauthorized = () => {};

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export function whenUnauthorized(handler) { onUnauthorized = handler; }

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
    this.hint = hintFor(status, code);
  }
}

function hintFor(status, code) {
  if (status === 0) return "Check that the Baton API is running (make up prints its URL), then reload the page.";
  if (status === 403) return "This key may not do that. Ask an admin for a key with the right (a human key decides gates).";
  if (status === 404) return "It may not exist, or it belongs to a project this key does not list.";
  if (status === 409) return "Someone or something changed it meanwhile. The page shows the current state; try again if it still applies.";
  if (status >= 500) return "Baton failed on its side. Try again in a moment; if it keeps failing, look at the API's log.";
  return null;
}

export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export async function request(method, path, body, { signal, key, headers } = {}) {
  const credential = key ?? session.key;
  const init = {
    method, signal, cache: "no-store", credentials: "omit", redirect: "error", referrerPolicy: "no-referrer",
    headers: { Accept: "application/json", ...(headers || {}) },
  };
  if (credential) init.headers.Authorization = `Bearer ${credential}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", "The Baton API did not answer.");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const detail = data && data.error ? data.error : {};
    const error = new ApiError(response.status, detail.code || `http_${response.status}`,
      detail.message || `The API answered ${response.status}.`, detail.details);
    if (response.status === 401 && key === undefined) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => request("GET", path, undefined, options);
export const post = (path, body, options) => request("POST", path, body ?? {}, options);
export const del = (path, options) => request("DELETE", path, undefined, options);

/** A path with its query string; empty values are left out. */
export function path(base, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}

export const id = (value) => encodeURIComponent(String(value));

/** Every item of a list, page by page (at most maxPages pages of 200). */
export async function all(base, params, { signal, maxPages = 20 } = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const data = await get(path(base, { ...params, limit: 200, cursor }), { signal });
    items.push(...data.items);
    cursor = data.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

/** Run ``tasks`` (functions returning promises) at most ``width`` at a time. */
export async function limited(tasks, width = 4) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const index = next++;
      try { results[index] = { ok: true, value: await tasks[index]() }; }
      catch (error) { results[index] = { ok: false, error }; }
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, tasks.length) }, worker));
  return results;
}
