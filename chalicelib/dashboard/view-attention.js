// Everything waiting for a person across the key's projects: the gates of runs awaiting approval
// (decided right here by a human key), and the API's attention items (escalations, stuck tasks,
// idle queues) where this Baton serves GET /attention. Until it does (a 404), the gates still show.
import { get, post, all, path, id, limited, idempotencyKey } from "./api.js";
import { h, pill, badge, errorBox, spinner, replaceChildren, emptyState, facts, plain } from "./dom.js";
import { absolute, relative, words } from "./format.js";
import { gateCard } from "./gates.js";

const REFRESH_MS = 5000;

export async function attentionView(main, ctx) {
  document.title = "Attention · Baton";
  const gatesBox = h("div", { class: "attention-gates", testid: "attention-gates" }, spinner("Looking for gates…"));
  const itemsBox = h("div", { class: "attention-items", testid: "attention-items" });
  const status = h("p", { class: "muted", "aria-live": "polite" });
  main.append(h("div", { class: "page-head" }, h("div", null, h("h1", null, "Attention"),
    h("p", { class: "muted" }, "What waits for a person across your projects: one click from each to act."))),
  status, h("section", { class: "panel" }, h("h2", null, "Gates waiting for a decision"), gatesBox),
  h("section", { class: "panel" }, h("h2", null, "Escalations, stuck tasks and idle queues"), itemsBox));

  const cards = new Map();    // signature -> element, so a comment being typed survives a refresh
  let endpoint = "unknown";   // GET /attention: "yes", "missing" (404), or "unknown"

  async function load() {
    const projects = (await all("/projects", {}, { signal: ctx.signal })).items;
    const names = new Map(projects.map((p) => [p.id, p.name]));
    const waiting = [];
    const perProject = await limited(projects.map((project) => () =>
      get(path(`/projects/${id(project.id)}/runs`, { limit: 50 }), { signal: ctx.signal })), 4);
    const runs = perProject.filter((r) => r.ok).flatMap((r) => r.value.items).filter((run) => run.status === "awaiting_approval");
    const approvals = await limited(runs.map((run) => () => get(`/runs/${id(run.id)}/approvals`, { signal: ctx.signal })), 4);
    runs.forEach((run, i) => {
      if (!approvals[i].ok) return;
      for (const approval of approvals[i].value.items) if (approval.status === "pending") waiting.push({ run, approval });
    });
    waiting.sort((a, b) => (a.approval.requested_at < b.approval.requested_at ? 1 : -1));
    renderGates(waiting, names);

    let items = [];
    if (endpoint !== "missing") {
      try {
        items = (await get(path("/attention", { status: "open", limit: 100 }), { signal: ctx.signal })).items;
        endpoint = "yes";
      } catch (error) {
        if (error.status === 404) endpoint = "missing";
        else if (error.name === "AbortError") throw error;
        else { replaceChildren(itemsBox, errorBox(error, "read the attention items")); return; }
      }
    }
    const shown = new Set(waiting.map((w) => w.run.id));
    renderItems(items.filter((item) => !(["approval", "budget"].includes(item.kind) && shown.has(item.run_id))), names);
    const total = waiting.length + items.length;
    status.textContent = total ? `${total} thing${total === 1 ? "" : "s"} waiting.` : "";
  }

  function renderGates(waiting, names) {
    if (!waiting.length) {
      replaceChildren(gatesBox, emptyState("No gate is waiting.", "Canary, deploy and budget gates that need a decision show up here."));
      return;
    }
    replaceChildren(gatesBox, waiting.map(({ run, approval }) => {
      const signature = [run.id, approval.gate, approval.requested_at].join("|");
      if (!cards.has(signature)) {
        cards.set(signature, h("div", { class: "attention-gate", testid: "attention-item", data: { kind: "gate", runId: run.id, gate: approval.gate } },
          h("p", { class: "crumbs" }, names.get(run.project_id) || run.project_id, " / ",
            h("a", { href: `#/runs/${encodeURIComponent(run.id)}`, testid: "attention-run-link" }, run.title)),
          gateCard(run, approval, ctx.me, { onDecided: () => load().catch(() => {}) })));
      }
      return cards.get(signature);
    }));
  }

  function renderItems(items, names) {
    if (endpoint === "missing") {
      replaceChildren(itemsBox, h("p", { class: "muted", testid: "attention-unavailable" },
        "This Baton does not report escalations, stuck tasks or idle queues yet (no GET /attention). Gates above are complete."));
      return;
    }
    if (!items.length) {
      replaceChildren(itemsBox, emptyState("Nothing else is waiting.", "The director's escalations, tasks waiting long for an agent and idle queues show up here."));
      return;
    }
    replaceChildren(itemsBox, items.map((item) => {
      const signature = `item|${item.id}|${item.status}`;
      if (!cards.has(signature)) cards.set(signature, attentionItem(item, names));
      return cards.get(signature);
    }));
  }

  function attentionItem(item, names) {
    const comment = h("input", { type: "text", name: "comment", maxlength: 2000, placeholder: "What was done (kept in the audit log)", "aria-label": "Comment", testid: "resolve-comment" });
    const result = h("div", { class: "form-status", "aria-live": "polite" });
    const details = item.details || {};
    const paused = details.paused === true;
    const resolve = h("button", { type: "button", class: "btn", testid: "resolve-item" }, paused ? "Resolve and resume the task" : "Resolve");
    resolve.addEventListener("click", async () => {
      resolve.disabled = true;
      try {
        await post(`/attention/${id(item.id)}/resolve`, { comment: comment.value.trim() }, { headers: { "Idempotency-Key": idempotencyKey() } });
        result.replaceChildren(h("p", { class: "good" }, "Resolved."));
        load().catch(() => {});
      } catch (error) {
        resolve.disabled = false;
        result.replaceChildren(errorBox(error, "resolve it"));
      }
    });
    return h("article", { class: "attention-item", testid: "attention-item", data: { kind: item.kind, itemId: item.id, rule: details.rule ? String(details.rule) : "" } },
      h("header", null, badge(words(item.kind), item.kind), pill(item.status),
        h("span", { class: "muted small" }, h("time", { datetime: item.created_at, title: absolute(item.created_at) }, relative(item.created_at)))),
      h("p", { class: "prewrap" }, item.summary),
      h("p", { class: "crumbs" }, names.get(item.project_id) || item.project_id,
        item.run_id ? [" / ", h("a", { href: `#/runs/${encodeURIComponent(item.run_id)}` }, "run")] : null,
        item.task_id ? [" / ", h("a", { href: `#/tasks/${encodeURIComponent(item.task_id)}` }, "task")] : null),
      detailFacts(details),
      paused ? h("p", { class: "muted", testid: "attention-paused" }, "The director paused this task: no new job starts until you resolve this item (or move the task to a stage).") : null,
      ctx.me.rights.includes("manage_project") ? h("div", { class: "decide" }, comment, resolve, result) : null);
  }

  // The director's items: the rule that fired, then its evidence one fact per line (not as JSON).
  function detailFacts(details) {
    const { rule, action, evidence, key, resume, paused, ...rest } = details;
    const entries = [];
    if (rule !== undefined) entries.push(["rule", plain(rule)]);
    if (action !== undefined) entries.push(["action", words(plain(action))]);
    if (evidence && typeof evidence === "object" && !Array.isArray(evidence)) {
      for (const [k, v] of Object.entries(evidence)) entries.push([words(k), plain(v)]);
    } else if (evidence !== undefined) entries.push(["evidence", plain(evidence)]);
    for (const [k, v] of Object.entries(rest)) entries.push([words(k), plain(v)]);
    if (!entries.length) return null;
    const list = facts(entries);
    list.dataset.testid = "attention-evidence";
    return list;
  }

  try { await load(); } catch (error) {
    if (error.name === "AbortError") return;
    replaceChildren(gatesBox, errorBox(error, "look for what waits"));
  }
  ctx.every(REFRESH_MS, load);
}
