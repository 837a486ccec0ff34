// Line diffs (Myers' O(ND) algorithm) and their rendering as text, for handoffs and role versions.
import { h } from "./dom.js";

/** [{op: " " | "-" | "+", line}] turning ``a`` into ``b`` (arrays of lines). */
export function diffLines(a, b) {
  const n = a.length, m = b.length, max = n + m;
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace = [];
  let found = false;
  for (let d = 0; d <= max && !found; d += 1) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = (k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])) ? v[offset + k + 1] : v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x += 1; y += 1; }
      v[offset + k] = x;
      if (x >= n && y >= m) { found = true; break; }
    }
    if (d > 4000) return coarse(a, b);   // far apart: say so plainly rather than spend the tab's time
  }
  const out = [];
  let x = n, y = m;
  for (let d = trace.length - 1; d >= 0; d -= 1) {
    const vd = trace[d];
    const k = x - y;
    const prevK = (k === -d || (k !== d && vd[offset + k - 1] < vd[offset + k + 1])) ? k + 1 : k - 1;
    const prevX = vd[offset + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) { out.push({ op: " ", line: a[x - 1] }); x -= 1; y -= 1; }
    if (d > 0) {
      if (x === prevX) out.push({ op: "+", line: b[y - 1] });
      else out.push({ op: "-", line: a[x - 1] });
    }
    x = prevX; y = prevY;
  }
  return out.reverse();
}

function coarse(a, b) {
  return [...a.map((line) => ({ op: "-", line })), ...b.map((line) => ({ op: "+", line }))];
}

export const lines = (text) => (text === undefined || text === null || text === "" ? [] : String(text).split("\n"));

/** Whether two line lists differ. */
export function changed(a, b) {
  return a.length !== b.length || a.some((line, i) => line !== b[i]);
}

/** A diff as a <pre>: changed lines with a few lines of context, unchanged runs folded. */
export function renderDiff(entries, { context = 3, testid = "diff" } = {}) {
  const pre = h("pre", { class: "diff", testid });
  const keep = entries.map((entry, i) => entry.op !== " " ||
    entries.slice(Math.max(0, i - context), i + context + 1).some((e) => e.op !== " "));
  let folded = 0;
  const flush = () => {
    if (folded) pre.append(h("span", { class: "diff-fold" }, `⋯ ${folded} unchanged line${folded === 1 ? "" : "s"}\n`));
    folded = 0;
  };
  entries.forEach((entry, i) => {
    if (!keep[i]) { folded += 1; return; }
    flush();
    const kind = entry.op === "+" ? "diff-add" : entry.op === "-" ? "diff-del" : "diff-same";
    pre.append(h("span", { class: kind }, `${entry.op} ${entry.line}\n`));
  });
  flush();
  if (!entries.some((e) => e.op !== " ")) pre.append(h("span", { class: "diff-fold" }, "no differences\n"));
  return pre;
}
