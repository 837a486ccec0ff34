// Projects and runs: every run the key can see, newest first, with status, progress, loop-backs,
// cost so far and who started it; filtered by project and status (in the URL, so a filtered list
// can be shared). The list refreshes itself; new runs appear at the top.
import { get, all, path, id, limited } from "./api.js";
import { h, pill, emptyState, errorBox, spinner, replaceChildren } from "./dom.js";
import { absolute, relative, money, words } from "./format.js";

export const RUN_STATUSES = ["pending", "running", "awaiting_approval", "succeeded", "failed", "killed", "rolled_back"];
const REFRESH_MS = 3000;

export async function runsView(main, ctx) {
  const projectFilter = ctx.query.get("project") || "";
  const statusFilter = ctx.query.get("status") || "";
  document.title = "Runs · Baton";

  const projectSelect = h("select", { name: "project", testid: "filter-project", "aria-label": "Project" },
    h("option", { value: "" }, "All projects"));
  const statusSelect = h("select", { name: "status", testid: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "Any status"),
    RUN_STATUSES.map((s) => h("option", { value: s, selected: s === statusFilter }, words(s))));
  const applyFilters = () => {
    const query = new URLSearchParams();
    if (projectSelect.value) query.set("project", projectSelect.value);
    if (statusSelect.value) query.set("status", statusSelect.value);
    const text = query.toString();
    ctx.navigate(text ? `#/runs?${text}` : "#/runs");
  };
  projectSelect.addEventListener("change", applyFilters);
  statusSelect.addEventListener("change", applyFilters);
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const list = h("div", { class: "runs" }, spinner("Loading runs…"));
  main.append(
    h("div", { class: "page-head" },
      h("h1", null, "Runs"),
      h("div", { class: "filters" }, projectSelect, statusSelect,
        ctx.me.rights.includes("report_bug") ? h("a", { class: "btn", href: "#/bug" }, "Report a bug") : null)),
    summary, list);

  const projects = (await all("/projects", {}, { signal: ctx.signal })).items;
  for (const project of projects) {
    projectSelect.append(h("option", { value: project.id, selected: project.id === projectFilter }, `${project.name} (${project.id})`));
  }
  if (!projects.length) {
    replaceChildren(list, emptyState("No projects yet.",
      ctx.me.rights.includes("create_project")
        ? "Create one with: baton project create <id> --repo <git url> (or POST /projects), then start a run."
        : "This key lists no project. Ask an admin for a key of your projects."));
    return;
  }
  const names = new Map(projects.map((p) => [p.id, p.name]));
  const chosen = projectFilter ? projects.filter((p) => p.id === projectFilter) : projects;
  if (projectFilter && !chosen.length) {
    replaceChildren(list, emptyState(`No project ${projectFilter} for this key.`, "Pick another project above."));
    return;
  }

  const rows = new Map();      // run id -> {updated, row}
  const stats = new Map();     // run id -> {updated, cell nodes filled}
  const tbody = h("tbody");
  const table = h("table", { class: "runs-table" },
    h("thead", null, h("tr", null, ["Run", "Status", "Progress", "Iterations", "Cost so far", "Started"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);

  async function load() {
    const pages = await Promise.all(chosen.map((project) =>
      get(path(`/projects/${id(project.id)}/runs`, { limit: 50 }), { signal: ctx.signal })
        .then((data) => data.items)
        .catch((error) => { if (error.status === 404) return []; throw error; })));
    const runs = pages.flat()
      .filter((run) => !statusFilter || run.status === statusFilter)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    if (!runs.length) {
      replaceChildren(list, emptyState(statusFilter ? `No ${words(statusFilter)} runs.` : "No runs yet.",
        statusFilter ? "Clear the status filter to see every run."
          : "Start one with: baton run start --project <id> --tasks tasks.yaml (or baton demo on the local stack)."));
      summary.textContent = "";
      return;
    }
    const ordered = runs.map((run) => {
      const known = rows.get(run.id);
      if (known && known.updated === run.updated_at) return known.row;
      const row = runRow(run, names.get(run.project_id) || run.project_id);
      rows.set(run.id, { updated: run.updated_at, row });
      return row;
    });
    replaceChildren(tbody, ordered);
    if (table.parentNode !== list) replaceChildren(list, h("div", { class: "table-wrap" }, table));
    summary.textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}${statusFilter ? ` ${words(statusFilter)}` : ""}, newest first.`;
    fillStats(runs.slice(0, 50));
  }

  function fillStats(runs) {
    const stale = runs.filter((run) => stats.get(run.id) !== run.updated_at);
    for (const run of stale) stats.set(run.id, run.updated_at);
    limited(stale.map((run) => async () => {
      const row = rows.get(run.id)?.row;
      if (!row || !ctx.active) return;
      const [usage, tasks] = await Promise.all([
        get(`/runs/${id(run.id)}/usage`, { signal: ctx.signal }).catch(() => null),
        get(path(`/runs/${id(run.id)}/tasks`, { limit: 200 }), { signal: ctx.signal }).catch(() => null)]);
      const cost = row.querySelector("[data-cell=cost]");
      const iterations = row.querySelector("[data-cell=iterations]");
      if (usage && cost) {
        const state = usage.budget && usage.budget.state;
        replaceChildren(cost, h("span", { testid: "run-cost" }, money(usage.total && usage.total.cost_usd)),
          state && state !== "ok" ? [" ", pill(state, `budget ${state}`)] : null);
      }
      if (tasks && iterations) {
        const loopBacks = tasks.items.reduce((n, t) => n + Math.max(0, (t.iteration || 1) - 1), 0);
        const maxIteration = tasks.items.reduce((n, t) => Math.max(n, t.iteration || 1), 0);
        const more = tasks.next_cursor ? "+" : "";
        replaceChildren(iterations, h("span", { testid: "run-loopbacks" },
          `${loopBacks}${more} loop-back${loopBacks === 1 && !more ? "" : "s"}`),
        h("span", { class: "muted" }, maxIteration ? ` · max iteration ${maxIteration}${more}` : ""));
      }
    }), 3);
  }

  try {
    await load();
  } catch (error) {
    if (error.name === "AbortError") return;
    replaceChildren(list, errorBox(error, "load the runs"));
  }
  ctx.every(REFRESH_MS, load);
}

export function progressBar(progress, label) {
  const p = progress || { total: 0, by_status: {}, percent_complete: 0 };
  const done = p.by_status?.done || 0, failed = p.by_status?.failed || 0, cancelled = p.by_status?.cancelled || 0;
  const ended = done + failed + cancelled;
  return h("div", { class: "progress" },
    h("progress", { max: 100, value: Math.min(100, Number(p.percent_complete) || 0), "aria-label": label || "Tasks ended" }),
    h("span", { class: "progress-text" }, `${ended} of ${p.total} ended`,
      failed ? h("span", { class: "bad" }, ` · ${failed} failed`) : null,
      cancelled ? h("span", { class: "muted" }, ` · ${cancelled} cancelled`) : null,
      p.by_status?.in_progress ? h("span", { class: "muted" }, ` · ${p.by_status.in_progress} in progress`) : null));
}

export function runStatus(run) {
  return [pill(run.status), run.status === "awaiting_approval" && run.gate ? h("span", { class: "muted" }, ` ${run.gate} gate`) : null];
}

function runRow(run, projectName) {
  return h("tr", { testid: "run-row", data: { runId: run.id, status: run.status } },
    h("td", { class: "run-title" },
      h("a", { href: `#/runs/${encodeURIComponent(run.id)}`, testid: "run-link" }, run.title),
      h("div", { class: "muted small" }, projectName, " · ", h("span", { class: "mono" }, run.id))),
    h("td", { testid: "run-status" }, runStatus(run)),
    h("td", null, progressBar(run.progress)),
    h("td", { data: { cell: "iterations" } }, h("span", { class: "muted" }, "…")),
    h("td", { data: { cell: "cost" } }, h("span", { class: "muted" }, "…")),
    h("td", null, h("time", { datetime: run.created_at, title: absolute(run.created_at) }, relative(run.created_at)),
      h("div", { class: "muted small" }, `by ${run.created_by}`)));
}
