// A run's gates (canary, deploy, budget): what each asks, and for a human key the decision form.
import { post, id, idempotencyKey } from "./api.js";
import { h, pill, facts, errorBox, plain } from "./dom.js";
import { absolute, relative, money, words } from "./format.js";

const TITLES = {
  canary: "Canary gate: go on with the rest of the run?",
  deploy: "Deploy gate: release this run?",
  budget: "Budget gate: the run reached its budget. Raise it and go on?",
};

export function canDecide(me) { return Boolean(me && me.rights.includes("decide_approval")); }

/** The gate's card. ``onDecided`` runs after the API accepted a decision. */
export function gateCard(run, approval, me, { onDecided, compact = false } = {}) {
  const gate = approval.gate;
  const pending = approval.status === "pending";
  const card = h("article", { class: ["gate", pending ? "gate-pending" : null], testid: `gate-${gate}`, data: { gate } },
    h("header", null,
      h("h3", null, TITLES[gate] || `Gate ${gate}`),
      pill(approval.status)),
    h("p", { class: "muted" }, `Requested ${relative(approval.requested_at)} (${absolute(approval.requested_at)})`,
      approval.decide_by ? ` · decided automatically ${relative(approval.decide_by)} if nobody decides` : ""));
  const summary = summaryFacts(approval.summary || {});
  if (summary && !compact) card.append(summary);
  if (!pending) {
    const verdict = { approve: "Approved", reject: "Rejected" }[approval.decision] || words(approval.status);
    card.append(h("p", { testid: "gate-verdict" }, `${verdict} by ${approval.decided_by || "Baton (timed out)"}`,
      approval.decided_at ? ` ${relative(approval.decided_at)}` : "",
      approval.comment ? h("q", { class: "comment" }, approval.comment) : null));
    return card;
  }
  if (!canDecide(me)) {
    card.append(h("p", { class: "note", testid: "gate-human-only" },
      "Waiting for a person: only a human key can approve or reject a gate",
      me ? ` (this is ${me.principal === "admin" ? "an admin" : `a${me.principal === "agent" ? "n" : ""} ${me.principal}`} key).` : "."));
    return card;
  }
  card.append(decisionForm(run, gate, onDecided));
  return card;
}

function summaryFacts(summary) {
  const entries = Object.entries(summary).filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (!entries.length) return null;
  return facts(entries.map(([name, value]) => [words(name),
    name.endsWith("cost_usd") && typeof value === "number" ? money(value)
      : name.endsWith("rate") || name.endsWith("fraction") ? `${Math.round(Number(value) * 1000) / 10}%` : plain(value)]));
}

function decisionForm(run, gate, onDecided) {
  const comment = h("textarea", { name: "comment", rows: 2, maxlength: 2000, testid: "gate-comment",
    placeholder: "Why (kept in the audit log)", "aria-label": `Comment on the ${gate} gate` });
  const raiseCost = h("input", { type: "number", min: "0.01", step: "0.01", name: "raise_cost_usd",
    testid: "gate-raise-cost", inputmode: "decimal", "aria-label": "Raise the cost budget by (USD)" });
  const raiseTokens = h("input", { type: "number", min: "1", step: "1", name: "raise_tokens",
    testid: "gate-raise-tokens", inputmode: "numeric", "aria-label": "Raise the token budget by" });
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const approve = h("button", { type: "button", class: "btn btn-approve", testid: `approve-${gate}` }, "Approve");
  const reject = h("button", { type: "button", class: "btn btn-reject", testid: `reject-${gate}` }, "Reject");
  async function decide(decision) {
    const body = { decision, comment: comment.value.trim() };
    if (gate === "budget" && decision === "approve") {
      if (raiseCost.value) body.raise_cost_usd = Number(raiseCost.value);
      if (raiseTokens.value) body.raise_tokens = Number(raiseTokens.value);
      if (body.raise_cost_usd === undefined && body.raise_tokens === undefined) {
        status.replaceChildren(h("p", { class: "error", role: "alert" },
          "To approve the budget gate, say how much to raise it by: dollars, tokens, or both."));
        return;
      }
    }
    approve.disabled = reject.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, decision === "approve" ? "Approving…" : "Rejecting…"));
    try {
      await post(`/runs/${id(run.id)}/approvals/${id(gate)}`, body, { headers: { "Idempotency-Key": idempotencyKey() } });
      status.replaceChildren(h("p", { class: "good", testid: "gate-decided" }, decision === "approve" ? "Approved." : "Rejected."));
      if (onDecided) onDecided(decision);
    } catch (error) {
      approve.disabled = reject.disabled = false;
      status.replaceChildren(errorBox(error, `${decision} the ${gate} gate`));
    }
  }
  approve.addEventListener("click", () => decide("approve"));
  reject.addEventListener("click", () => decide("reject"));
  return h("div", { class: "decide" },
    h("label", null, "Comment", comment),
    gate === "budget" ? h("div", { class: "raise" },
      h("label", null, "Raise by $", raiseCost), h("label", null, "and/or tokens", raiseTokens)) : null,
    h("div", { class: "actions" }, approve, reject),
    status);
}
