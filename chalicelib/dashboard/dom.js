// Building the page safely. Everything is made with createElement and text nodes: a string is
// always text (textContent), never markup; attributes come from an allow-list; links and image
// sources are only http(s) URLs or the app's own hash routes. There is no innerHTML anywhere in the
// dashboard, and the page's CSP (require-trusted-types-for 'script') makes the browser refuse it.

const ATTRIBUTES = new Set([
  "id", "type", "name", "title", "alt", "role", "placeholder", "min", "max", "step", "rows", "accept",
  "autocomplete", "tabindex", "colspan", "datetime", "rel", "target", "spellcheck", "maxlength",
  "inputmode", "for", "scope", "loading", "decoding", "referrerpolicy", "lang", "list", "size",
  "aria-label", "aria-live", "aria-current", "aria-expanded", "aria-controls", "aria-describedby",
  "aria-hidden", "aria-busy", "aria-modal", "aria-labelledby", "aria-valuenow", "aria-valuemin",
  "aria-valuemax", "aria-pressed", "aria-invalid",
]);
// Set as properties (they reflect state, not markup).
const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "multiple", "required", "open",
  "hidden", "readOnly", "autofocus"]);

/** The URL if it is safe to link to: an in-app route (#/...) or an absolute http(s) URL. */
export function safeHref(value) {
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (text.startsWith("#/")) return text;
  return httpUrl(text);
}

/** An absolute http(s) URL, or a same-origin path under /ui/, else null. */
export function httpUrl(value) {
  if (typeof value !== "string" || value.length > 8192) return null;
  if (/^\/ui\/[A-Za-z0-9._-]+$/.test(value)) return value;
  let url;
  try { url = new URL(value); } catch { return null; }
  return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
}

/** h("div", {class: "x", testid: "y"}, "text", child, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      setProp(el, name, value);
    }
  }
  append(el, children);
  return el;
}

function setProp(el, name, value) {
  if (name === "class") {
    el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
  } else if (name === "text") {
    el.textContent = String(value);
  } else if (name === "testid") {
    el.setAttribute("data-testid", String(value));
  } else if (name === "data") {
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined && item !== null) el.dataset[key] = String(item);
    }
  } else if (name === "href") {
    const safe = safeHref(value);
    if (safe) el.setAttribute("href", safe);
  } else if (name === "src") {
    const safe = httpUrl(value);
    if (safe) el.setAttribute("src", safe);
  } else if (name.startsWith("on") && typeof value === "function") {
    el.addEventListener(name.slice(2).toLowerCase(), value);
  } else if (PROPERTIES.has(name)) {
    el[name] = value;
  } else if (ATTRIBUTES.has(name)) {
    el.setAttribute(name, value === true ? "" : String(value));
  } else {
    throw new Error(`h(): attribute ${name} is not allowed`);
  }
}

export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replaceChildren(el, ...children) {
  clear(el);
  return append(el, children);
}

/** A link that leaves the app: a new tab, no referrer, no opener. */
export function externalLink(url, label) {
  const safe = httpUrl(url);
  if (!safe) return h("span", { class: "mono" }, label ?? String(url ?? ""));
  return h("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow", class: "external" }, label ?? safe);
}

/** A status pill: the colour comes from a class named after a known status only. */
const STATUSES = new Set(["pending", "running", "awaiting_approval", "succeeded", "failed", "killed", "rolled_back",
  "queued", "in_progress", "done", "cancelled", "created", "accepted", "completed", "approved", "rejected",
  "open", "resolved", "stored", "ok", "warning", "exhausted", "high", "medium", "low", "critical", "info",
  "expired"]);
export function pill(status, label) {
  const known = STATUSES.has(status) ? `s-${status}` : "s-unknown";
  return h("span", { class: ["pill", known] }, label ?? String(status ?? "").replaceAll("_", " "));
}

export function badge(text, kind) {
  return h("span", { class: ["badge", kind ? `b-${kind}` : null] }, text);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}

export function emptyState(title, hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), hint ? h("p", null, hint) : null);
}

export function errorBox(error, what) {
  const status = error && error.status ? ` (${error.status}${error.code ? " " + error.code : ""})` : "";
  return h("div", { class: "error", role: "alert" },
    h("p", { class: "error-title" }, what ? `Could not ${what}.` : "Something went wrong."),
    h("p", null, (error && error.message ? error.message : String(error)) + status),
    error && error.hint ? h("p", { class: "hint" }, error.hint) : null);
}

export function spinner(text = "Loading…") {
  return h("div", { class: "loading", "aria-busy": "true" }, text);
}

/** A key: value list (dl) of plain values; objects are shown as compact JSON text. */
export function facts(entries) {
  const dl = h("dl", { class: "facts" });
  for (const [label, value] of entries) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(h("dt", null, label), h("dd", null, value instanceof Node ? value : plain(value)));
  }
  return dl;
}

export function plain(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
