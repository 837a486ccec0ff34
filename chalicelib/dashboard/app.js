// Baton's dashboard: the shell (header, navigation, sign-in), hash routing, and each view's life
// (a view gets a context whose signal aborts and whose timers stop when the route changes).
import { ApiError, get, session, whenUnauthorized } from "./api.js";
import { h, clear, errorBox } from "./dom.js";
import { runsView } from "./view-runs.js";
import { runView } from "./view-run.js";
import { taskView } from "./view-task.js";
import { attentionView } from "./view-attention.js";
import { bugView } from "./view-bug.js";
import { rolesView, roleView } from "./view-roles.js";

const ROUTES = [
  [/^\/runs$/, runsView, "runs"],
  [/^\/runs\/([^/]+)$/, runView, "runs"],
  [/^\/tasks\/([^/]+)$/, taskView, "runs"],
  [/^\/attention$/, attentionView, "attention"],
  [/^\/bug$/, bugView, "bug"],
  [/^\/roles$/, rolesView, "roles"],
  [/^\/roles\/([^/]+)$/, roleView, "roles"],
];

const NAV = [["runs", "Runs", "#/runs"], ["attention", "Attention", "#/attention"], ["bug", "Report a bug", "#/bug"],
  ["roles", "Roles", "#/roles"]];

const root = document.getElementById("app");
let me = null;
let current = null;   // the running view's context
let flash = null;     // a message for the next sign-in screen

export function navigate(hash, { replace = false } = {}) {
  if (replace) location.replace(hash);
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [pathPart, queryPart = ""] = raw.split("?");
  let decoded;
  try { decoded = pathPart.split("/").map(decodeURIComponent); } catch { decoded = ["", "runs"]; }
  return { path: decoded.join("/"), segments: decoded, query: new URLSearchParams(queryPart), raw };
}

function newContext() {
  const controller = new AbortController();
  const timers = new Set();
  const cleanups = [];
  return {
    signal: controller.signal,
    get active() { return !controller.signal.aborted; },
    me,
    /** Run ``action`` every ``ms`` (after the previous run ended) until the view goes away. */
    every(ms, action) {
      const tick = async () => {
        if (controller.signal.aborted) return;
        try { await action(); } catch (error) { if (error.name !== "AbortError") console.warn(error); }
        if (!controller.signal.aborted) timers.add(setTimeout(tick, document.hidden ? Math.max(ms, 10000) : ms));
      };
      timers.add(setTimeout(tick, ms));
    },
    interval(ms, action) {
      const timer = setInterval(() => { if (!controller.signal.aborted) action(); }, ms);
      cleanups.push(() => clearInterval(timer));
    },
    onCleanup(fn) { cleanups.push(fn); },
    stop() {
      controller.abort();
      for (const timer of timers) clearTimeout(timer);
      for (const fn of cleanups) { try { fn(); } catch { /* the view is gone */ } }
    },
  };
}

async function route() {
  if (current) { current.stop(); current = null; }
  const where = parseHash();
  if (where.path === "/signin" || !session.key) {
    renderSignIn(where.path === "/signin" ? where.query.get("next") : where.raw);
    return;
  }
  if (!me) {
    clear(root).append(h("div", { class: "loading" }, "Signing in…"));
    try {
      me = await get("/whoami");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;   // whenUnauthorized took over
      clear(root).append(h("main", { class: "page" }, errorBox(error, "reach Baton")));
      return;
    }
  }
  const match = ROUTES.map(([pattern, view, tab]) => [where.path.match(pattern), view, tab]).find(([m]) => m);
  const ctx = newContext();
  current = ctx;
  const main = h("main", { class: "page", id: "main", tabindex: "-1" });
  clear(root).append(shell(match ? match[2] : null), main);
  document.title = "Baton";
  if (!match) {
    main.append(h("div", { class: "error" }, h("p", { class: "error-title" }, "There is no such page."),
      h("p", null, h("a", { href: "#/runs" }, "Go to the runs"))));
    return;
  }
  try {
    await match[1](main, { ...ctx, params: match[0].slice(1), query: where.query, me, navigate, signal: ctx.signal,
      every: ctx.every, interval: ctx.interval, onCleanup: ctx.onCleanup, get active() { return ctx.active; } });
  } catch (error) {
    if (error.name === "AbortError" || !ctx.active) return;
    main.append(errorBox(error, "show this page"));
  }
}

function shell(tab) {
  const who = me ? `${me.name} · ${me.principal}` : "";
  return h("header", { class: "topbar" },
    h("a", { class: "brand", href: "#/runs", "aria-label": "Baton: runs" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), "Baton"),
    h("nav", { "aria-label": "Main" }, NAV.map(([key, label, href]) =>
      h("a", { href, class: ["nav-link", key === tab ? "active" : null], "aria-current": key === tab ? "page" : null,
        testid: `nav-${key}` }, label))),
    h("div", { class: "who" },
      h("span", { class: ["who-name", me ? `k-${me.principal}` : null], testid: "whoami", title: me ? `key ${me.key_id}` : "" }, who),
      h("button", { type: "button", class: "btn btn-quiet", testid: "sign-out", onClick: signOut }, "Sign out")));
}

function signOut() {
  session.clear();
  me = null;
  flash = "Signed out. The key is forgotten by this tab.";
  navigate("#/signin");
}

function renderSignIn(next) {
  const target = next && next.startsWith("/") && !next.startsWith("/signin") ? `#${next}` : "#/runs";
  const input = h("input", { type: "password", name: "api_key", id: "signin-key", testid: "signin-key",
    autocomplete: "off", spellcheck: "false", required: true, placeholder: "bt_…", "aria-describedby": "signin-help" });
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  if (flash) { status.append(h("p", { class: "muted" }, flash)); flash = null; }
  const button = h("button", { type: "submit", class: "btn btn-primary", testid: "signin-submit" }, "Sign in");
  const form = h("form", { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), " Baton"),
    h("p", { class: "muted" }, "Runs, gates and evidence of your agents' pipelines."),
    h("label", { for: "signin-key" }, "API key"),
    input,
    h("p", { id: "signin-help", class: "hint" },
      "A human key can approve gates. `make up` prints the local admin key. The key stays in this tab only (sessionStorage) and is sent to this Baton alone."),
    button, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, "Checking the key…"));
    try {
      me = await get("/whoami", { key });
      session.set(key);
      if (location.hash === target) route();
      else navigate(target);
    } catch (error) {
      button.disabled = false;
      const message = error.status === 401
        ? "Baton does not accept this key: check that it was copied whole (it starts with bt_) and was not revoked, or ask an admin for a new one."
        : error.status === 403 ? "This credential is not an API key (a launch code cannot sign in). Use a human, agent or admin key."
          : null;
      status.replaceChildren(message ? h("p", { class: "error", role: "alert", testid: "signin-error" }, message)
        : errorBox(error, "check the key"));
    }
  });
  clear(root).append(h("main", { class: "page signin-page" }, form));
  document.title = "Sign in · Baton";
  input.focus();
}

whenUnauthorized(() => {
  session.clear();
  me = null;
  flash = "Baton no longer accepts this key (revoked or expired?). Sign in again.";
  const where = parseHash();
  if (where.path !== "/signin") navigate(`#/signin?next=${encodeURIComponent(where.raw)}`, { replace: true });
});

window.addEventListener("hashchange", route);
if (!location.hash) history.replaceState(null, "", "#/runs");
route();
