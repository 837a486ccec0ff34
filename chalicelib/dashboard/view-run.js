// A run: its board (a lane per stage, then complete / failed / cancelled; a card per task), its
// progress and usage, its gates (decided here by a human key), kill, and the audit timeline. Live:
// every 1.5 s one events read after the last sequence seen; only the tasks those events name are
// read again, so the board moves with the run at the cost of what changed.
import { get, del, all, path, id, limited } from "./api.js";
import { h, pill, badge, errorBox, spinner, replaceChildren, facts, emptyState } from "./dom.js";
import { absolute, relative, countdown, money, count, words, shortId } from "./format.js";
import { gateCard } from "./gates.js";
import { latestSeq, eventsAfter, taskOf, eventRow } from "./events.js";
import { progressBar, runStatus } from "./view-runs.js";

const POLL_MS = 1500;
const TIMELINE_ROWS = 300;
const TERMINAL_RUN = new Set(["succeeded", "failed", "killed", "rolled_back"]);
const TERMINAL_LANES = ["complete", "failed", "cancelled"];

export async function runView(main, ctx) {
  const runId = ctx.params[0];
  const state = { run: null, tasks: new Map(), cards: new Map(), lanes: new Map(), lastSeq: 0, approvals: [], usage: null };
  main.append(spinner("Loading the run…"));

  // The events first: the tasks read after them are at least as new as the last event seen, and
  // every later event is read by the poll.
  const first = await eventsAfter(runId, 0, { signal: ctx.signal });
  let initialEvents = first.items;
  state.lastSeq = first.last;
  if (first.more) {
    state.lastSeq = await latestSeq(runId, ctx.signal);
    initialEvents = (await eventsAfter(runId, Math.max(0, state.lastSeq - TIMELINE_ROWS),
      { signal: ctx.signal, pages: Math.ceil(TIMELINE_ROWS / 200) })).items;
  }
  // The first page of tasks is drawn at once; the others follow page by page (a big run's board
  // grows while it loads, instead of staying blank until the last page).
  const [run, tasks, approvals, usage] = await Promise.all([
    get(`/runs/${id(runId)}`, { signal: ctx.signal }),
    get(path(`/runs/${id(runId)}/tasks`, { limit: 200 }), { signal: ctx.signal }),
    get(`/runs/${id(runId)}/approvals`, { signal: ctx.signal }).then((d) => d.items).catch(() => []),
    get(`/runs/${id(runId)}/usage`, { signal: ctx.signal }).catch(() => null),
  ]);
  state.run = run;
  state.approvals = approvals;
  state.usage = usage;
  for (const task of tasks.items) state.tasks.set(task.id, task);
  state.loading = Boolean(tasks.next_cursor);
  document.title = `${run.title} · Baton`;

  // ---- layout
  const head = h("div", { class: "page-head" });
  const progressPanel = h("section", { class: "panel", testid: "run-progress" });
  const usagePanel = h("section", { class: "panel", testid: "run-usage" });
  const gatesPanel = h("section", { class: "panel", testid: "run-gates" });
  const board = h("div", { class: "board", testid: "board" });
  const timeline = h("ol", { class: "timeline", testid: "timeline" });
  const liveNote = h("span", { class: "live", testid: "live", "aria-live": "off" }, "live");
  replaceChildren(main,
    head,
    h("div", { class: "run-grid" }, progressPanel, usagePanel, gatesPanel),
    h("section", { class: "panel board-panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Board"),
        h("span", { class: "muted", testid: "task-count" })),
      board),
    h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Audit timeline"), liveNote), timeline));

  function renderHead() {
    const r = state.run;
    const canKill = ctx.me.rights.includes("manage_project") && !TERMINAL_RUN.has(r.status);
    replaceChildren(head,
      h("div", null,
        h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ",
          h("a", { href: `#/runs?project=${encodeURIComponent(r.project_id)}` }, r.project_id)),
        h("h1", { testid: "run-title" }, r.title),
        h("p", { class: "meta" }, h("span", { testid: "run-status" }, runStatus(r)), " ",
          h("span", { class: "mono muted" }, r.id), " · started ",
          h("time", { datetime: r.created_at, title: absolute(r.created_at) }, relative(r.created_at)),
          ` by ${r.created_by}`)),
      h("div", { class: "actions" },
        ctx.me.rights.includes("report_bug") && !TERMINAL_RUN.has(r.status)
          ? h("a", { class: "btn", href: `#/bug?project=${encodeURIComponent(r.project_id)}&run=${encodeURIComponent(r.id)}` }, "Report a bug") : null,
        canKill ? h("button", { type: "button", class: "btn btn-danger", testid: "kill-run", onClick: confirmKill }, "Kill run…") : null));
  }

  function renderProgress() {
    const r = state.run;
    const p = r.progress || { by_stage: {}, by_status: {} };
    replaceChildren(progressPanel, h("h2", null, "Progress"), progressBar(p, "Tasks of the run ended"),
      facts([
        ["Stages", (r.stages || []).join(" → ") + (r.deploy_gate ? " → deploy gate" : "")],
        ["By stage", Object.entries(p.by_stage || {}).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`).join(" · ") || "–"],
        ["By status", Object.entries(p.by_status || {}).filter(([, n]) => n).map(([s, n]) => `${words(s)} ${n}`).join(" · ") || "–"],
        ["Iterations", `at most ${r.max_iterations} per task · parallelism ${r.parallelism}`],
        ["Canary", r.canary ? `${Math.round(r.canary.fraction * 1000) / 10}% (at least ${r.canary.min_tasks})${r.canary_state ? ` · ${words(typeof r.canary_state === "string" ? r.canary_state : JSON.stringify(r.canary_state))}` : ""}` : null],
        ["Release", r.release_task_id ? h("a", { href: `#/tasks/${encodeURIComponent(r.release_task_id)}` }, "release task") : null],
        ["Rollback", r.rollback_task_id ? h("a", { href: `#/tasks/${encodeURIComponent(r.rollback_task_id)}` }, "rollback task") : null],
      ]));
  }

  function renderUsage() {
    const u = state.usage;
    if (!u) { replaceChildren(usagePanel, h("h2", null, "Usage"), h("p", { class: "muted" }, "No usage reported.")); return; }
    const t = u.total || {};
    const budget = u.budget || {};
    const limits = [budget.max_cost_usd ? `${money(budget.max_cost_usd)}` : null, budget.max_tokens ? `${count(budget.max_tokens)} tokens` : null].filter(Boolean);
    replaceChildren(usagePanel, h("h2", null, "Usage"),
      h("p", { class: "big" }, h("span", { testid: "usage-cost" }, money(t.cost_usd)), h("span", { class: "muted small" }, " so far")),
      facts([
        ["Tokens", `${count(t.tokens_in)} in · ${count(t.tokens_out)} out · ${count(t.tokens_cached)} cached`],
        ["Agent time", t.wall_seconds ? `${Math.round(t.wall_seconds)} s` : null],
        ["Budget", limits.length ? h("span", null,
          h("meter", { min: 0, max: 1, value: Math.min(1, Number(budget.used_fraction) || 0), "aria-label": "Budget used" }),
          ` ${Math.round((Number(budget.used_fraction) || 0) * 100)}% of ${limits.join(" / ")} `, pill(budget.state, budget.state)) : "none set"],
        ["By stage", Object.entries(u.by_stage || {}).map(([s, v]) => `${s} ${money(v.cost_usd)}`).join(" · ") || null],
        ["By model", Object.entries(u.by_model || {}).map(([m, v]) => `${m} ${money(v.cost_usd)}`).join(" · ") || null],
      ]));
  }

  const gateCards = new Map();   // signature -> card: a card being filled in survives a refresh
  function renderGates() {
    const items = [...state.approvals].sort((a, b) => (a.status === "pending" ? -1 : 0) - (b.status === "pending" ? -1 : 0));
    const cards = items.map((approval) => {
      const signature = [approval.gate, approval.status, approval.requested_at, approval.decided_at].join("|");
      if (!gateCards.has(signature)) gateCards.set(signature, gateCard(state.run, approval, ctx.me, { onDecided: refreshAll }));
      return gateCards.get(signature);
    });
    replaceChildren(gatesPanel, h("h2", null, "Gates"),
      cards.length ? cards
        : h("p", { class: "muted" }, state.run.deploy_gate ? "No gate asked yet. The deploy gate opens when every task has ended."
          : "No gate asked yet."));
  }

  // ---- the board
  function laneNames() {
    const names = [...(state.run.stages || [])];
    const extra = new Set();
    for (const task of state.tasks.values()) {
      const lane = laneOf(task);
      if (!names.includes(lane) && !TERMINAL_LANES.includes(lane)) extra.add(lane);
    }
    if (state.run.deploy_gate || state.run.release_task_id) extra.add("cicd");
    return [...names, ...[...extra].filter((n) => !names.includes(n)), ...TERMINAL_LANES];
  }

  function renderBoard() {
    const began = performance.now();
    state.lanes.clear();
    state.cards.clear();
    const lanes = laneNames().map((name) => {
      const list = h("div", { class: "lane-cards" });
      const countEl = h("span", { class: "lane-count" }, "0");
      const lane = h("section", { class: ["lane", `lane-${TERMINAL_LANES.includes(name) ? name : "stage"}`], testid: `lane-${name}`, data: { lane: name }, "aria-label": `${name} lane` },
        h("header", null, h("h3", null, name === "complete" ? "complete" : name), countEl), list);
      state.lanes.set(name, { lane, list, countEl });
      return lane;
    });
    const byLane = new Map();
    for (const task of [...state.tasks.values()].sort(cardOrder)) {
      const name = laneOf(task);
      if (!byLane.has(name)) byLane.set(name, document.createDocumentFragment());
      const card = taskCard(task);
      state.cards.set(task.id, card);
      byLane.get(name).append(card);
    }
    for (const [name, fragment] of byLane) state.lanes.get(name)?.list.append(fragment);
    replaceChildren(board, lanes);
    if (!state.tasks.size) board.append(emptyState("This run has no tasks.", null));
    updateCounts();
    performance.measure("baton:board", { start: began, detail: { tasks: state.tasks.size } });   // read by tests/browser
  }

  function placeTask(task) {
    const before = state.tasks.get(task.id);
    state.tasks.set(task.id, task);
    const old = state.cards.get(task.id);
    const name = laneOf(task);
    if (!state.lanes.has(name)) { renderBoard(); return; }
    if (old && before && before.version === task.version && before.lease_expires_at === task.lease_expires_at) return;
    const card = taskCard(task);
    state.cards.set(task.id, card);
    if (old) old.remove();
    const { list } = state.lanes.get(name);
    const next = [...list.children].find((el) => cardOrder(task, state.tasks.get(el.dataset.taskId) || task) < 0);
    list.insertBefore(card, next || null);
    card.classList.add("moved");
    updateCounts();
  }

  function updateCounts() {
    for (const { list, countEl } of state.lanes.values()) countEl.textContent = String(list.children.length);
    const total = board.closest(".board-panel")?.querySelector("[data-testid=task-count]");
    if (total) {
      total.textContent = `${state.tasks.size} task${state.tasks.size === 1 ? "" : "s"}${state.loading ? ", loading more…" : ""}` +
        (state.truncated ? " (the first 10,000 are shown)" : "");
    }
  }

  function taskCard(task) {
    const parent = task.parent_task_id ? state.tasks.get(task.parent_task_id) : null;
    const lease = task.status === "in_progress" && task.lease_expires_at;
    return h("article", { class: ["card", `c-${task.status}`], testid: "task-card", data: { taskId: task.id, status: task.status, stage: task.stage } },
      h("a", { class: "card-title", href: `#/tasks/${encodeURIComponent(task.id)}`, testid: "task-title" }, task.title),
      h("div", { class: "card-meta" },
        pill(task.status),
        h("span", { class: "iter", testid: "task-iteration", title: "iteration" }, `iter ${task.iteration}`),
        task.priority !== 5 ? h("span", { class: "muted", title: "priority" }, `p${task.priority}`) : null),
      h("div", { class: "card-badges" },
        task.canary ? h("span", { class: "badge b-canary", testid: "canary-badge", title: "in the canary subset" }, "canary") : null,
        task.held ? h("span", { class: "badge b-held", testid: "held-badge", title: "may not start until its gate" }, `held: ${task.held}`) : null,
        task.source && task.source !== "manual" ? badge(words(task.source), task.source) : null),
      task.parent_task_id ? h("div", { class: "card-parent small" }, "fix of ",
        h("a", { href: `#/tasks/${encodeURIComponent(task.parent_task_id)}`, testid: "parent-link" }, parent ? parent.title : shortId(task.parent_task_id))) : null,
      task.claimed_by && task.status === "in_progress" ? h("div", { class: "card-claim small" },
        h("span", { testid: "claimed-by" }, task.claimed_by),
        lease ? h("span", { class: "lease", testid: "lease", data: { lease: task.lease_expires_at } }, leaseText(task.lease_expires_at)) : null) : null);
  }

  // ---- the timeline
  function addEvents(events, { live }) {
    const fragment = document.createDocumentFragment();
    for (const event of [...events].reverse()) fragment.append(eventRow(event, { taskTitle: (t) => state.tasks.get(t)?.title }));
    timeline.insertBefore(fragment, timeline.firstChild);
    while (timeline.children.length > TIMELINE_ROWS) timeline.lastChild.remove();
    if (live) for (const row of [...timeline.children].slice(0, events.length)) row.classList.add("fresh");
    if (!timeline.children.length) timeline.append(h("li", { class: "muted" }, "No events yet."));
  }

  // ---- live
  async function poll() {
    const batch = await eventsAfter(runId, state.lastSeq, { signal: ctx.signal, pages: 5 });
    if (!batch.items.length) return;
    state.lastSeq = batch.last;
    timeline.querySelector("li.muted:only-child")?.remove();
    addEvents(batch.items, { live: true });
    await applyEvents(batch.items);
  }

  async function applyEvents(events) {
    const touched = new Set();
    let bulk = false, gates = false, usage = false;
    for (const event of events) {
      const task = taskOf(event);
      if (task) touched.add(task);
      const d = event.data || {};
      for (const list of [d.created_tasks, d.task_ids, d.tasks_created]) {
        if (Array.isArray(list)) for (const item of list) touched.add(typeof item === "string" ? item : item && item.id);
      }
      if (event.action.startsWith("tasks.") || event.action === "run.killed") bulk = true;
      if (/^(approval|run|budget|canary)\./.test(event.action)) gates = true;
      if (/^(usage|budget)\./.test(event.action)) usage = true;
    }
    touched.delete(undefined);
    const reads = [get(`/runs/${id(runId)}`, { signal: ctx.signal }).then((r) => { state.run = r; })];
    if (gates) reads.push(get(`/runs/${id(runId)}/approvals`, { signal: ctx.signal }).then((d) => { state.approvals = d.items; }));
    if (usage) reads.push(get(`/runs/${id(runId)}/usage`, { signal: ctx.signal }).then((u) => { state.usage = u; }));
    if (bulk || touched.size > 40) {
      reads.push(all(`/runs/${id(runId)}/tasks`, {}, { signal: ctx.signal, maxPages: 50 }).then((page) => {
        state.tasks = new Map(page.items.map((t) => [t.id, t]));
        renderBoard();
      }));
    } else if (touched.size) {
      reads.push(limited([...touched].map((taskId) => () => get(`/tasks/${id(taskId)}`, { signal: ctx.signal })
        .then((task) => { if (task.run_id === runId) placeTask(task); })), 4));
    }
    const statusBefore = state.run.status;
    await Promise.all(reads.map((p) => p.catch((error) => { if (error.name === "AbortError") throw error; })));
    if (!ctx.active) return;
    renderHead();
    renderProgress();
    if (usage) renderUsage();
    if (gates || statusBefore !== state.run.status) renderGates();
  }

  async function refreshAll() {
    const [r, a, u, t] = await Promise.all([
      get(`/runs/${id(runId)}`, { signal: ctx.signal }),
      get(`/runs/${id(runId)}/approvals`, { signal: ctx.signal }).then((d) => d.items).catch(() => state.approvals),
      get(`/runs/${id(runId)}/usage`, { signal: ctx.signal }).catch(() => state.usage),
      all(`/runs/${id(runId)}/tasks`, {}, { signal: ctx.signal, maxPages: 50 })]);
    state.run = r; state.approvals = a; state.usage = u;
    state.tasks = new Map(t.items.map((task) => [task.id, task]));
    renderHead(); renderProgress(); renderUsage(); renderGates(); renderBoard();
  }

  // ---- kill
  function confirmKill() {
    const open = [...state.tasks.values()].filter((t) => !["done", "failed", "cancelled"].includes(t.status)).length;
    const status = h("div", { class: "form-status", "aria-live": "polite" });
    const confirm = h("button", { type: "button", class: "btn btn-danger", testid: "kill-confirm" }, "Kill the run");
    const cancel = h("button", { type: "button", class: "btn", testid: "kill-cancel" }, "Keep it running");
    const dialog = h("dialog", { class: "modal", testid: "kill-dialog", "aria-labelledby": "kill-title" },
      h("h2", { id: "kill-title" }, "Kill this run?"),
      h("p", null, h("strong", null, state.run.title)),
      h("p", null, `Its ${open} open task${open === 1 ? "" : "s"} will be cancelled and no new stage job starts. `,
        "Nothing is deleted: the run, its evidence and its audit log stay. This cannot be undone."),
      h("div", { class: "actions" }, cancel, confirm), status);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    confirm.addEventListener("click", async () => {
      confirm.disabled = cancel.disabled = true;
      status.replaceChildren(h("p", { class: "muted" }, "Killing…"));
      try {
        state.run = await del(`/runs/${id(runId)}`);
        dialog.close();
        await refreshAll();
      } catch (error) {
        confirm.disabled = cancel.disabled = false;
        status.replaceChildren(errorBox(error, "kill the run"));
      }
    });
    document.body.append(dialog);
    ctx.onCleanup(() => dialog.remove());
    dialog.showModal();
    cancel.focus();
  }

  renderHead();
  renderProgress();
  renderUsage();
  renderGates();
  renderBoard();
  addEvents(initialEvents, { live: false });
  // Each page is asked for as soon as the cursor to it arrives, before the page just read is drawn.
  const taskPage = (cursor) => get(path(`/runs/${id(runId)}/tasks`, { limit: 200, cursor }), { signal: ctx.signal });
  let cursor = tasks.next_cursor;
  let next = cursor ? taskPage(cursor) : null;
  for (let pages = 1; next; pages += 1) {
    const page = await next;
    cursor = page.next_cursor;
    next = cursor && pages + 1 < 50 ? taskPage(cursor) : null;
    for (const task of page.items) state.tasks.set(task.id, task);
    state.loading = Boolean(next);
    renderBoard();
  }
  state.truncated = Boolean(cursor);
  state.loading = false;
  updateCounts();
  ctx.interval(1000, () => {
    for (const el of board.querySelectorAll("[data-lease]")) el.textContent = leaseText(el.dataset.lease);
  });
  ctx.every(POLL_MS, poll);
}

export function laneOf(task) {
  if (task.status === "done") return "complete";
  if (task.status === "failed") return "failed";
  if (task.status === "cancelled") return "cancelled";
  return task.stage === "none" ? "dev" : task.stage;
}

function cardOrder(a, b) {
  if (a.status !== b.status) {
    const rank = { in_progress: 0, queued: 1 };
    const d = (rank[a.status] ?? 2) - (rank[b.status] ?? 2);
    if (d) return d;
  }
  if (a.priority !== b.priority) return b.priority - a.priority;
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : (a.id < b.id ? -1 : 1);
}

function leaseText(iso) {
  const left = countdown(iso);
  return left ? `lease ${left}` : "lease expired";
}

