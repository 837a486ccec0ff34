// A task: what it is and where it stands, its stage history (from the run's audit events), its
// handoffs as structured cards (newest first, each with what changed since the one before), its
// proofs as a gallery (screenshots as thumbnails, JUnit summarised, findings as a table, logs and
// diffs as text) and its jobs. Every string here was written by an agent: it is shown as text.
import { get, path, id } from "./api.js";
import { h, pill, badge, errorBox, spinner, replaceChildren, facts, emptyState, externalLink, httpUrl } from "./dom.js";
import { absolute, relative, countdown, bytes, words, shortId, money, count } from "./format.js";
import { diffLines, lines, renderDiff } from "./diff.js";
import { renderProofText } from "./reports.js";
import { eventsAfter, taskOf, describe } from "./events.js";

const RASTER = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const HISTORY_PAGES = 10;
const POLL_MS = 2000;

export async function taskView(main, ctx) {
  const taskId = ctx.params[0];
  main.append(spinner("Loading the task…"));
  let context = await get(`/tasks/${id(taskId)}/context`, { signal: ctx.signal });
  const state = { handoffs: context.handoffs, handoffCursor: context.handoffs_next_cursor, history: [], lastSeq: 0,
    historyComplete: true, open: new Set() };
  document.title = `${context.task.title} · Baton`;

  const head = h("div", { class: "page-head" });
  const about = h("section", { class: "panel", testid: "task-about" });
  const history = h("section", { class: "panel", testid: "stage-history" });
  const handoffs = h("section", { class: "panel", testid: "handoffs" });
  const proofs = h("section", { class: "panel", testid: "proofs" });
  const attempts = h("section", { class: "panel", testid: "attempts" });
  replaceChildren(main, head, h("div", { class: "task-grid" }, about, history), handoffs, proofs, attempts);

  function renderHead() {
    const { task, run } = context;
    const lease = task.status === "in_progress" && task.lease_expires_at;
    replaceChildren(head, h("div", null,
      h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ",
        h("a", { href: `#/runs?project=${encodeURIComponent(run.project_id)}` }, run.project_id), " / ",
        h("a", { href: `#/runs/${encodeURIComponent(run.id)}`, testid: "task-run-link" }, run.title)),
      h("h1", { testid: "task-heading" }, task.title),
      h("p", { class: "meta" }, pill(task.status), " ",
        h("span", { class: "stage-tag", testid: "task-stage" }, task.stage), " ",
        h("span", { testid: "task-iteration" }, `iteration ${task.iteration}`), " ",
        task.canary ? h("span", { class: "badge b-canary", testid: "canary-badge" }, "canary") : null, " ",
        task.held ? h("span", { class: "badge b-held", testid: "held-badge" }, `held: ${task.held}`) : null, " ",
        task.source !== "manual" ? badge(words(task.source), task.source) : null, " ",
        h("span", { class: "mono muted" }, task.id)),
      task.parent_task_id ? h("p", null, "Fix task of ",
        h("a", { href: `#/tasks/${encodeURIComponent(task.parent_task_id)}`, testid: "parent-link" }, task.parent_task_id)) : null,
      task.claimed_by && task.status === "in_progress" ? h("p", { class: "muted" }, `Claimed by ${task.claimed_by}`,
        lease ? h("span", { class: "lease", data: { lease: task.lease_expires_at } }, ` · lease ${countdown(task.lease_expires_at) || "expired"}`) : null) : null),
    h("div", { class: "actions" }, ctx.me.rights.includes("report_bug")
      ? h("a", { class: "btn", href: `#/bug?project=${encodeURIComponent(task.project_id)}&task=${encodeURIComponent(task.id)}` }, "Report a bug about it") : null));
  }

  function renderAbout() {
    const { task, role, requirements, project } = context;
    replaceChildren(about, h("h2", null, "About"),
      task.description ? h("p", { class: "prewrap", testid: "task-description" }, task.description) : h("p", { class: "muted" }, "No description."),
      facts([
        ["Project", h("span", null, project.name, " · ", externalLink(project.repository_url))],
        ["Priority", String(task.priority)],
        ["Created", `${relative(task.created_at)} (${absolute(task.created_at)})`],
        ["Updated", `${relative(task.updated_at)} (${absolute(task.updated_at)})`],
        ["Role", role ? h("span", null, `${role.role} v${role.version} `, h("a", { href: `#/roles/${encodeURIComponent(role.role)}`, class: "mono", title: role.digest }, shortDigest(role.digest))) : null],
        ["Needs", requirements && requirements.required_proofs && requirements.required_proofs.length
          ? `${requirements.required_proofs.join(", ")} for ${requirements.stage} iteration ${requirements.iteration}${requirements.missing && requirements.missing.length ? ` — missing ${requirements.missing.join(", ")}` : " — all there"}` : null],
        ["Usage", task.usage ? `${money(task.usage.cost_usd)} · ${count(task.usage.tokens_in)} in / ${count(task.usage.tokens_out)} out tokens` : null],
        ["Outputs", Object.keys(task.outputs || {}).length ? h("pre", { class: "small" }, JSON.stringify(task.outputs, null, 2)) : null],
        ["Inputs", Object.keys(task.inputs || {}).length ? h("pre", { class: "small" }, JSON.stringify(task.inputs, null, 2)) : null],
      ]));
  }

  function renderHistory() {
    const rows = state.history;
    replaceChildren(history, h("h2", null, "Stage history"),
      rows.length ? h("ol", { class: "history" }, rows.map((event) => h("li", { testid: "history-row", data: { action: event.action } },
        h("time", { datetime: event.at, title: absolute(event.at) }, relative(event.at)),
        h("span", { class: "ev-action" }, event.action),
        h("span", null, describe(event)),
        h("span", { class: "muted" }, event.actor))))
        : h("p", { class: "muted" }, "No stage changes yet."),
      state.historyComplete ? null : h("p", { class: "note" }, `Only the run's first ${HISTORY_PAGES * 200} events were read; later changes of this task are in the run's timeline.`));
  }

  function renderHandoffs() {
    const list = state.handoffs;
    const more = state.handoffCursor
      ? h("button", { type: "button", class: "btn", testid: "handoffs-more", onClick: loadOlderHandoffs }, "Load older handoffs") : null;
    replaceChildren(handoffs, h("h2", null, `Handoffs (${list.length}${state.handoffCursor ? "+" : ""})`),
      list.length ? list.map((handoff, i) => handoffCard(handoff, list[i + 1], i === list.length - 1 && Boolean(state.handoffCursor)))
        : emptyState("No handoff yet.", "The agent that works a stage writes one when it hands the task over."),
      more);
  }

  async function loadOlderHandoffs() {
    const page = await get(path(`/tasks/${id(taskId)}/handoffs`, { cursor: state.handoffCursor, limit: 20 }), { signal: ctx.signal });
    const known = new Set(state.handoffs.map((x) => x.id));
    state.handoffs = [...state.handoffs, ...page.items.filter((x) => !known.has(x.id))];
    state.handoffCursor = page.next_cursor;
    renderHandoffs();
  }

  function renderProofs() {
    const all = context.proofs;
    const shots = all.filter((p) => RASTER.has(String(p.content_type).split(";")[0].trim().toLowerCase()));
    const others = all.filter((p) => !shots.includes(p));
    replaceChildren(proofs, h("h2", null, `Proofs (${all.length}${context.proofs_next_cursor ? "+" : ""})`),
      !all.length ? emptyState("No proof yet.", "Agents attach logs, test results, reports, diffs and screenshots to each stage.") : null,
      shots.length ? h("div", { class: "gallery" }, shots.map(thumbnail)) : null,
      others.length ? h("ul", { class: "proof-list" }, others.map(proofRow)) : null,
      context.proofs_next_cursor ? h("p", { class: "note" }, "Older proofs are not shown; GET /tasks/{id}/proofs lists them all.") : null);
  }

  function thumbnail(proof) {
    const figure = h("figure", { class: "thumb", data: { proofId: proof.id } });
    const caption = h("figcaption", null, h("span", { class: "filename" }, proof.filename),
      h("span", { class: "muted small" }, ` ${proof.stage} · iter ${proof.iteration}`));
    const show = (url) => {
      const img = h("img", { src: url, alt: `Screenshot ${proof.filename}`, loading: "lazy", decoding: "async", testid: "proof-thumb", referrerpolicy: "no-referrer" });
      const button = h("button", { type: "button", class: "thumb-button", "aria-label": `Enlarge ${proof.filename}` }, img);
      button.addEventListener("click", () => enlarge(url, proof));
      replaceChildren(figure, button, caption);
    };
    if (proof.status !== "stored") {
      replaceChildren(figure, h("div", { class: "thumb-missing" }, "not uploaded yet"), caption);
    } else if (httpUrl(proof.url)) {
      show(proof.url);
    } else {
      replaceChildren(figure, h("div", { class: "thumb-missing" }, "loading…"), caption);
      get(`/proofs/${id(proof.id)}/text`, { signal: ctx.signal })
        .then((content) => show(content.download_url))
        .catch(() => replaceChildren(figure, h("div", { class: "thumb-missing" }, "no preview"), caption));
    }
    return figure;
  }

  function enlarge(url, proof) {
    const close = h("button", { type: "button", class: "btn", testid: "proof-close" }, "Close");
    const dialog = h("dialog", { class: "modal lightbox", testid: "proof-large", "aria-label": proof.filename },
      h("img", { src: url, alt: `Screenshot ${proof.filename}`, referrerpolicy: "no-referrer" }),
      h("p", null, h("span", { class: "filename" }, proof.filename), " ", close));
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    ctx.onCleanup(() => dialog.remove());
    dialog.showModal();
  }

  function proofRow(proof) {
    const body = h("div", { class: "proof-body" });
    const toggle = h("button", { type: "button", class: "btn btn-small", testid: "proof-view", "aria-expanded": "false" }, "Show");
    const row = h("li", { class: "proof", testid: "proof-row", data: { proofId: proof.id, type: proof.type } },
      h("div", { class: "proof-head" },
        badge(words(proof.type), proof.type),
        h("span", { class: "filename" }, proof.filename),
        h("span", { class: "muted small" }, `${bytes(proof.size)} · ${proof.stage} iteration ${proof.iteration} · by ${proof.uploaded_by} · ${relative(proof.created_at)}`),
        proof.status === "stored" ? toggle : pill(proof.status === "pending" ? "pending" : proof.status, "not uploaded yet")),
      body);
    const load = async () => {
      body.replaceChildren(spinner("Reading the proof…"));
      try {
        const content = await get(`/proofs/${id(proof.id)}/text`, { signal: ctx.signal });
        const download = httpUrl(content.download_url)
          ? h("a", { href: content.download_url, class: "small", rel: "noopener noreferrer", target: "_blank" }, "Download the file") : null;
        if (content.text === null || content.text === undefined) {
          body.replaceChildren(h("p", { class: "muted" }, "This proof is not text. "), download);
        } else {
          body.replaceChildren(...[renderProofText(proof, content.text)].flat(),
            content.truncated ? h("p", { class: "note" }, `Showing the first 512 KB of ${bytes(content.size)}. `, download) : h("p", null, download));
        }
      } catch (error) {
        body.replaceChildren(errorBox(error, "read the proof"));
      }
    };
    toggle.addEventListener("click", () => {
      const opening = !state.open.has(proof.id);
      if (opening) { state.open.add(proof.id); load(); } else { state.open.delete(proof.id); body.replaceChildren(); }
      toggle.textContent = opening ? "Hide" : "Show";
      toggle.setAttribute("aria-expanded", String(opening));
    });
    if (state.open.has(proof.id)) { toggle.textContent = "Hide"; toggle.setAttribute("aria-expanded", "true"); load(); }
    return row;
  }

  function renderAttempts() {
    const rows = context.attempts || [];
    replaceChildren(attempts, h("h2", null, "Jobs and attempts"),
      rows.length ? h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, ["Job", "Stage", "Iteration", "Attempt", "Role", "Executor", "Status", "Created", "Launched"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", null, rows.map((job) => h("tr", { testid: "attempt-row" },
          h("td", { class: "mono" }, shortId(job.job_id)), h("td", null, job.stage), h("td", null, String(job.iteration)),
          h("td", null, String(job.attempt)),
          h("td", null, job.role ? `${job.role}${job.role_version ? ` v${job.role_version}` : ""}` : "", job.role_digest ? h("span", { class: "mono muted", title: job.role_digest }, ` ${shortDigest(job.role_digest)}`) : null),
          h("td", null, job.executor || ""), h("td", null, job.status ? pill(job.status) : ""),
          h("td", null, job.created_at ? relative(job.created_at) : ""), h("td", null, job.launched_at ? relative(job.launched_at) : ""))))))
        : h("p", { class: "muted" }, "No stage job was dispatched for this task (agents that claim it themselves have no jobs here)."));
  }

  async function loadHistory() {
    const batch = await eventsAfter(context.run.id, 0, { signal: ctx.signal, pages: HISTORY_PAGES });
    state.history = batch.items.filter((event) => taskOf(event) === taskId && (event.action.startsWith("task.") || event.action.startsWith("job.")));
    state.historyComplete = !batch.more;
    state.lastSeq = batch.last;
    if (batch.more) state.lastSeq = 0;   // too long a run to follow from here: no live updates
    renderHistory();
  }

  async function poll() {
    if (!state.lastSeq) return;
    const batch = await eventsAfter(context.run.id, state.lastSeq, { signal: ctx.signal, pages: 3 });
    state.lastSeq = batch.last;
    const mine = batch.items.filter((event) => taskOf(event) === taskId);
    if (!mine.length) return;
    state.history.push(...mine.filter((event) => event.action.startsWith("task.") || event.action.startsWith("job.")));
    context = await get(`/tasks/${id(taskId)}/context`, { signal: ctx.signal });
    const known = new Set(state.handoffs.map((x) => x.id));
    state.handoffs = [...context.handoffs.filter((x) => !known.has(x.id)), ...state.handoffs];
    renderHead(); renderAbout(); renderHistory(); renderHandoffs(); renderProofs(); renderAttempts();
  }

  renderHead(); renderAbout(); renderHistory(); renderHandoffs(); renderProofs(); renderAttempts();
  try { await loadHistory(); } catch (error) {
    if (error.name === "AbortError") return;
    history.append(errorBox(error, "read the task's history"));
  }
  ctx.interval(1000, () => {
    for (const el of head.querySelectorAll("[data-lease]")) el.textContent = ` · lease ${countdown(el.dataset.lease) || "expired"}`;
  });
  ctx.every(POLL_MS, poll);
}

const shortDigest = (digest) => (digest ? `sha256:${String(digest).slice(0, 12)}` : "");

/** A handoff as text, one fact per line: what the diff between two handoffs compares. */
export function handoffText(handoff) {
  const out = [`summary: ${handoff.summary}`, `confidence: ${handoff.confidence}`, `from ${handoff.from_role} to ${handoff.to_role}`];
  for (const item of handoff.work_done || []) out.push(`work done: ${item.ref ? `${item.ref}: ` : ""}${item.description}`);
  for (const d of handoff.decisions || []) out.push(`decision: ${d.choice}${d.alternatives && d.alternatives.length ? ` (over ${d.alternatives.join(", ")})` : ""}${d.reason ? ` because ${d.reason}` : ""}`);
  for (const line of lines(handoff.notes_for_next)) out.push(`notes: ${line}`);
  for (const item of handoff.learnings || []) out.push(`learning: ${item}`);
  for (const item of handoff.open_questions || []) out.push(`open question: ${item}`);
  for (const line of lines(handoff.resume_prompt)) out.push(`resume prompt: ${line}`);
  return out;
}

function handoffCard(handoff, previous, previousUnloaded) {
  const list = (title, items, render) => (items && items.length
    ? h("div", { class: "hf-part" }, h("h4", null, title), h("ul", null, items.map((item) => h("li", null, render(item))))) : null);
  const text = (title, value, testid) => (value ? h("div", { class: "hf-part" }, h("h4", null, title), h("p", { class: "prewrap", testid }, value)) : null);
  let compare = null;
  if (previous) {
    compare = h("details", { class: "hf-diff", testid: "handoff-diff" },
      h("summary", null, "What changed since the previous handoff"),
      renderDiff(diffLines(handoffText(previous), handoffText(handoff))));
  } else if (previousUnloaded) {
    compare = h("p", { class: "muted small" }, "Load older handoffs to compare with the previous one.");
  }
  return h("article", { class: "handoff", testid: "handoff-card", data: { handoffId: handoff.id } },
    h("header", null,
      h("h3", null, `${handoff.from_role} → ${handoff.to_role}`),
      h("span", { class: "muted" }, `${handoff.stage} · iteration ${handoff.iteration}`),
      pill({ high: "ok", medium: "warning", low: "failed" }[handoff.confidence] || "unknown", `confidence ${handoff.confidence}`),
      pill(handoff.status),
      h("span", { class: "muted small" }, `${handoff.created_by} · `,
        h("time", { datetime: handoff.created_at, title: absolute(handoff.created_at) }, relative(handoff.created_at)))),
    h("p", { class: "hf-summary prewrap", testid: "handoff-summary" }, handoff.summary),
    list("Work done", handoff.work_done, (item) => [item.ref ? (httpUrl(item.ref) ? externalLink(item.ref) : h("span", { class: "mono" }, item.ref)) : null,
      item.ref ? " — " : null, item.description]),
    list("Decisions", handoff.decisions, (d) => [h("strong", null, d.choice),
      d.alternatives && d.alternatives.length ? h("span", { class: "muted" }, ` over ${d.alternatives.join(", ")}`) : null,
      d.reason ? h("div", { class: "small" }, d.reason) : null]),
    text("Notes for the next agent", handoff.notes_for_next),
    list("Learnings", handoff.learnings, (item) => item),
    list("Open questions", handoff.open_questions, (item) => item),
    handoff.resume_prompt ? h("details", { class: "hf-part" }, h("summary", null, "Resume prompt"), h("pre", { class: "prewrap" }, handoff.resume_prompt)) : null,
    handoff.proof_ids && handoff.proof_ids.length ? h("p", { class: "small muted" }, `Cites proofs: ${handoff.proof_ids.join(", ")}`) : null,
    compare);
}
