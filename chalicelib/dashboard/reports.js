// What a proof's text means: JUnit XML summarised, SARIF / bandit / Baton's simple reports as
// finding tables, anything else as text (diffs coloured by line). Everything read from a proof is
// an agent's output: it is only ever put into the page as text.
import { h, externalLink } from "./dom.js";

const ENTITIES = { lt: "<", gt: ">", amp: "&", quot: "\"", apos: "'" };

function unescapeXml(text) {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name) => {
    if (name[0] === "#") {
      const code = name[1] === "x" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name] ?? whole;
  });
}

function attributes(text) {
  const found = {};
  for (const match of text.matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    found[match[1]] = unescapeXml(match[3] ?? match[4] ?? "");
  }
  return found;
}

/** JUnit XML (testsuites/testsuite/testcase with failure, error, skipped), read by a small tag
 * scanner (no XML parser: the page's Trusted Types policy allows no string-to-document sink). */
export function parseJUnit(xml) {
  const text = xml.replace(/<!--[\s\S]*?-->/g, "").replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (_, body) =>
    body.replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" })[c]));
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[^\s=>/]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/g;
  const suites = [];
  const cases = [];
  let current = null;
  let open = null;   // the failure/error element whose text is being read
  let sawRoot = false;
  for (const match of text.matchAll(tag)) {
    const [whole, closing, name, attrText, selfClosing] = match;
    const local = name.split(":").pop();
    if (open && closing && local === open.kind) {
      open.text = unescapeXml(text.slice(open.start, match.index)).trim();
      open = null;
      continue;
    }
    if (closing) {
      if (local === "testcase") current = null;
      continue;
    }
    const attrs = attributes(attrText);
    if (local === "testsuites" || local === "testsuite") {
      sawRoot = true;
      if (local === "testsuite") suites.push(attrs);
    } else if (local === "testcase") {
      sawRoot = true;
      current = { name: attrs.name || "(unnamed)", classname: attrs.classname || "", time: attrs.time, outcome: "passed", message: "", text: "" };
      cases.push(current);
      if (selfClosing) current = null;
    } else if (current && (local === "failure" || local === "error")) {
      current.outcome = local === "failure" ? "failed" : "error";
      current.message = attrs.message || attrs.type || "";
      if (!selfClosing) { open = { kind: local, start: match.index + whole.length, text: "" }; current.detail = open; }
    } else if (current && local === "skipped") {
      current.outcome = "skipped";
      current.message = attrs.message || "";
    }
  }
  if (!sawRoot) return null;
  const sum = (key) => suites.reduce((total, suite) => total + (parseInt(suite[key], 10) || 0), 0);
  const counted = (outcome) => cases.filter((c) => c.outcome === outcome).length;
  return {
    tests: cases.length || sum("tests"),
    failures: cases.length ? counted("failed") : sum("failures"),
    errors: cases.length ? counted("error") : sum("errors"),
    skipped: cases.length ? counted("skipped") : sum("skipped"),
    failing: cases.filter((c) => c.outcome === "failed" || c.outcome === "error")
      .map((c) => ({ ...c, text: c.detail ? c.detail.text : "" })),
  };
}

export function renderJUnit(summary) {
  const passed = summary.tests - summary.failures - summary.errors - summary.skipped;
  const ok = summary.failures === 0 && summary.errors === 0;
  return h("div", { class: "junit", testid: "junit-summary" },
    h("p", { class: ["junit-line", ok ? "good" : "bad"] },
      `${summary.tests} tests: ${passed} passed, ${summary.failures} failed, ${summary.errors} errors, ${summary.skipped} skipped`),
    summary.failing.length ? h("ul", { class: "failing" }, summary.failing.map((c) =>
      h("li", null, h("span", { class: "mono" }, c.classname ? `${c.classname}.${c.name}` : c.name),
        c.message ? h("span", { class: "muted" }, ` — ${c.message}`) : null,
        c.text ? h("pre", { class: "small" }, c.text.slice(0, 4000)) : null))) : null);
}

const LEVEL_SEVERITY = { error: "high", warning: "medium", note: "low", none: "info" };

/** Findings of a SARIF, bandit, or Baton simple report: [{severity, rule, location, message, link}]. */
export function parseFindings(data) {
  if (!data || typeof data !== "object") return null;
  if (Array.isArray(data.runs)) {
    const rows = [];
    for (const run of data.runs) {
      const rules = new Map(((run.tool && run.tool.driver && run.tool.driver.rules) || []).map((r) => [r.id, r]));
      for (const result of run.results || []) {
        const rule = rules.get(result.ruleId) || {};
        const where = (result.locations || [])[0]?.physicalLocation || {};
        const line = where.region?.startLine;
        const props = result.properties || {};
        rows.push({
          severity: String(props.issue_severity || props.severity || LEVEL_SEVERITY[result.level] || result.level || "medium").toLowerCase(),
          rule: [result.ruleId, rule.name].filter(Boolean).join(" "),
          location: (where.artifactLocation?.uri || "") + (line ? `:${line}` : ""),
          message: result.message?.text || rule.shortDescription?.text || "",
          link: rule.helpUri,
        });
      }
    }
    return rows;
  }
  if (Array.isArray(data.results)) {
    return data.results.map((r) => ({
      severity: String(r.issue_severity || "medium").toLowerCase(),
      rule: [r.test_id, r.test_name].filter(Boolean).join(" "),
      location: (r.filename || "") + (r.line_number ? `:${r.line_number}` : ""),
      message: r.issue_text || "", link: r.more_info,
    }));
  }
  const items = Array.isArray(data.findings) ? data.findings : Array.isArray(data.bugs) ? data.bugs : null;
  if (!items) return null;
  return items.map((f) => ({
    severity: String(f.severity || "medium").toLowerCase(), rule: f.title || f.issue || "",
    location: (f.file || "") + (f.line ? `:${f.line}` : ""), message: f.description || f.recommendation || "",
  }));
}

const ORDER = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };

export function renderFindings(rows) {
  if (!rows.length) return h("p", { class: "good" }, "No findings.");
  const sorted = [...rows].sort((a, b) => (ORDER[a.severity] ?? 5) - (ORDER[b.severity] ?? 5));
  const counts = {};
  for (const row of rows) counts[row.severity] = (counts[row.severity] || 0) + 1;
  const known = new Set(["critical", "high", "medium", "low", "info"]);
  return h("div", { class: "findings", testid: "findings-table" },
    h("p", null, Object.entries(counts).map(([severity, n]) => `${n} ${severity}`).join(" · ")),
    h("div", { class: "table-wrap" }, h("table", null,
      h("thead", null, h("tr", null, ["Severity", "Rule", "Where", "Message"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", null, sorted.map((row) => h("tr", null,
        h("td", null, h("span", { class: ["pill", known.has(row.severity) ? `s-${row.severity}` : "s-unknown"] }, row.severity)),
        h("td", { class: "mono" }, row.link ? externalLink(row.link, row.rule) : row.rule),
        h("td", { class: "mono" }, row.location),
        h("td", null, row.message)))))));
}

/** A proof's text as the best view of it: JUnit summary, findings table, coloured diff, or text. */
export function renderProofText(proof, text) {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("<")) {
    const junit = parseJUnit(text);
    if (junit) return [renderJUnit(junit), rawText(text, "Raw XML")];
  }
  if (trimmed.startsWith("{")) {
    let data = null;
    try { data = JSON.parse(text); } catch { data = null; }
    const rows = parseFindings(data);
    if (rows) return [renderFindings(rows), rawText(text, "Raw report")];
  }
  if (proof.type === "code_diff" || /^(diff --git|--- |\+\+\+ |@@ )/m.test(text.slice(0, 2000))) {
    return h("pre", { class: "diff proof-text" }, text.split("\n").map((line) => h("span", {
      class: line.startsWith("+++") || line.startsWith("---") ? "diff-file" : line.startsWith("+") ? "diff-add"
        : line.startsWith("-") ? "diff-del" : line.startsWith("@@") ? "diff-hunk" : "diff-same",
    }, `${line}\n`)));
  }
  return h("pre", { class: "proof-text" }, text);
}

function rawText(text, label) {
  return h("details", { class: "raw" }, h("summary", null, label), h("pre", { class: "proof-text" }, text));
}
