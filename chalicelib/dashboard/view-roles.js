// Roles: each role's active version and digest, and a diff between any two of its versions (the
// pair is in the URL, so a comparison can be shared).
import { get, id } from "./api.js";
import { h, emptyState, facts, badge } from "./dom.js";
import { absolute, relative } from "./format.js";
import { diffLines, renderDiff } from "./diff.js";

const SPEC = ["executor", "command", "image", "required_proofs", "timeout_seconds", "heartbeat_seconds"];

export async function rolesView(main, ctx) {
  document.title = "Roles · Baton";
  const roles = (await get("/roles", { signal: ctx.signal })).items;
  main.append(h("div", { class: "page-head" }, h("div", null, h("h1", null, "Roles"),
    h("p", { class: "muted" }, "The active version of each role. A run pins these digests when it starts; its jobs use exactly them."))));
  if (!roles.length) { main.append(emptyState("No role configured.", "An admin publishes role configs with PUT /roles/{role}.")); return; }
  main.append(h("div", { class: "table-wrap" }, h("table", { class: "roles-table" },
    h("thead", null, h("tr", null, ["Role", "Version", "Digest", "Executor", "Command", "Required proofs", "Timeout", "Published"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, roles.map((role) => h("tr", { testid: "role-row", data: { role: role.role } },
      h("td", null, h("a", { href: `#/roles/${encodeURIComponent(role.role)}` }, role.role)),
      h("td", null, `v${role.version}`),
      h("td", { class: "mono", title: role.digest }, role.digest.slice(0, 16)),
      h("td", null, badge(role.executor, role.executor)),
      h("td", { class: "mono small" }, role.command || role.image || "–"),
      h("td", null, (role.required_proofs || []).join(", ") || "none"),
      h("td", null, `${role.timeout_seconds} s · heartbeat ${role.heartbeat_seconds} s`),
      h("td", null, h("time", { datetime: role.created_at, title: absolute(role.created_at) }, relative(role.created_at)),
        h("div", { class: "muted small" }, role.created_by))))))));
}

export async function roleView(main, ctx) {
  const name = ctx.params[0];
  document.title = `${name} role · Baton`;
  const versions = (await get(`/roles/${id(name)}/versions`, { signal: ctx.signal })).items
    .sort((a, b) => b.version - a.version);
  main.append(h("p", { class: "crumbs" }, h("a", { href: "#/roles" }, "Roles"), " / ", name));
  if (!versions.length) { main.append(emptyState(`No version of ${name}.`, null)); return; }
  const byVersion = new Map(versions.map((v) => [String(v.version), v]));
  const newest = versions[0];
  const b = byVersion.get(ctx.query.get("b") || "") || newest;
  const a = byVersion.get(ctx.query.get("a") || "") || versions.find((v) => v.version < b.version) || b;
  const pick = (label, selected, key) => {
    const select = h("select", { name: key, testid: `role-version-${key}`, "aria-label": label },
      versions.map((v) => h("option", { value: String(v.version), selected: v.version === selected.version },
        `v${v.version} · ${v.digest.slice(0, 12)}${v === newest ? " (active)" : ""}`)));
    select.addEventListener("change", () => {
      const query = new URLSearchParams({ a: key === "a" ? select.value : String(a.version), b: key === "b" ? select.value : String(b.version) });
      ctx.navigate(`#/roles/${encodeURIComponent(name)}?${query}`);
    });
    return select;
  };
  main.append(
    h("h1", null, `${name}`, h("span", { class: "muted" }, ` v${newest.version} active`)),
    facts([["Active digest", h("span", { class: "mono", testid: "role-digest" }, newest.digest)],
      ["Published", `${relative(newest.created_at)} by ${newest.created_by}`], ["Versions", String(versions.length)]]),
    h("section", { class: "panel" },
      h("h2", null, "Compare versions"),
      h("div", { class: "filters" }, h("label", null, "From ", pick("From version", a, "a")), h("label", null, "to ", pick("To version", b, "b"))),
      facts([[`v${a.version}`, h("span", { class: "mono" }, a.digest)], [`v${b.version}`, h("span", { class: "mono" }, b.digest)]]),
      a.version === b.version ? h("p", { class: "muted" }, "The same version: pick another one to compare.")
        : renderDiff(diffLines(specText(a), specText(b)), { context: 4, testid: "role-diff" })),
    h("section", { class: "panel" }, h("h2", null, `Prompt of v${b.version}`), h("pre", { class: "prewrap" }, b.prompt)));
}

function specText(role) {
  const out = SPEC.map((key) => `${key}: ${JSON.stringify(role[key] ?? null)}`);
  out.push("prompt:");
  for (const line of String(role.prompt || "").split("\n")) out.push(`  ${line}`);
  return out;
}


