// A run's audit events: reading them (forwards only, as the API serves them) and showing them.
import { get, path, id } from "./api.js";
import { h } from "./dom.js";
import { absolute, relative, words } from "./format.js";

/** The newest event's sequence number (0: none), probing with one-item reads: the API reads events
 * only forwards from ``after``, and a long run has tens of thousands of them. */
export async function latestSeq(runId, signal) {
  const has = async (after) => (await get(path(`/runs/${id(runId)}/events`, { after, limit: 1 }), { signal })).items.length > 0;
  if (!(await has(0))) return 0;
  let lo = 0, step = 256, hi = step;
  while (await has(hi)) { lo = hi; step *= 4; hi = lo + step; }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await has(mid)) lo = mid; else hi = mid;
  }
  return hi;
}

/** Events after ``after``, at most ``pages`` pages of 200: {items, last, more}. */
export async function eventsAfter(runId, after, { signal, pages = 1 } = {}) {
  const items = [];
  let last = after;
  for (let page = 0; page < pages; page += 1) {
    const data = await get(path(`/runs/${id(runId)}/events`, { after: last, limit: 200 }), { signal });
    items.push(...data.items);
    if (data.items.length) last = data.items[data.items.length - 1].seq;
    if (!data.next_cursor) return { items, last, more: false };
  }
  return { items, last, more: true };
}

/** The task an event is about, if any. */
export function taskOf(event) {
  if (typeof event.entity === "string" && event.entity.startsWith("task:")) return event.entity.slice(5);
  const data = event.data || {};
  return typeof data.task_id === "string" ? data.task_id : null;
}

const MOVES = ["from_stage", "to_stage", "from_status", "to_status"];

/** One line saying what the event changed. */
export function describe(event) {
  const d = event.data || {};
  const parts = [];
  if (d.from_stage !== undefined || d.to_stage !== undefined) {
    if (d.from_stage !== d.to_stage) parts.push(`${d.from_stage} → ${d.to_stage}`);
    else if (d.to_stage) parts.push(String(d.to_stage));
  }
  if (d.from_status !== undefined && d.from_status !== d.to_status) parts.push(`${words(d.from_status)} → ${words(d.to_status)}`);
  if (d.iteration !== undefined) parts.push(`iteration ${d.iteration}`);
  if (d.result) parts.push(String(d.result));
  if (d.agent_id) parts.push(`by ${d.agent_id}`);
  for (const [name, value] of Object.entries(d)) {
    if (MOVES.includes(name) || ["iteration", "result", "agent_id", "pinned_roles", "task_id"].includes(name)) continue;
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) continue;
    const text = typeof value === "object" ? JSON.stringify(value) : String(value);
    parts.push(`${words(name)}: ${text.length > 160 ? `${text.slice(0, 157)}…` : text}`);
  }
  return parts.join(" · ");
}

export function eventRow(event, { taskTitle } = {}) {
  const task = taskOf(event);
  const entity = task
    ? h("a", { href: `#/tasks/${encodeURIComponent(task)}` }, taskTitle ? taskTitle(task) || task : task)
    : h("span", { class: "mono" }, event.entity);
  const kind = event.action.split(".")[0];
  return h("li", { testid: "event-row", class: ["event", `ev-${["task", "run", "approval", "budget", "handoff", "proof", "usage", "findings", "job"].includes(kind) ? kind : "other"}`], data: { seq: event.seq, action: event.action } },
    h("span", { class: "ev-seq mono" }, `#${event.seq}`),
    h("time", { datetime: event.at, title: absolute(event.at) }, relative(event.at)),
    h("span", { class: "ev-action" }, event.action),
    h("span", { class: "ev-entity" }, entity),
    h("span", { class: "ev-detail" }, describe(event)),
    h("span", { class: "ev-actor muted" }, event.actor));
}
