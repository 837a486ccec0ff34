// Report a bug: title, description, severity, optionally the run it belongs to and screenshots.
// The bug becomes a task (POST /projects/{id}/bugs); each screenshot is then uploaded as a proof of
// that task (declared, sent straight to the proof bucket with its presigned form, confirmed).
import { get, post, all, path, id, idempotencyKey } from "./api.js";
import { h, errorBox, spinner, replaceChildren, emptyState } from "./dom.js";
import { bytes } from "./format.js";

const SEVERITIES = [["critical", "Critical: data loss, security, everything down"], ["high", "High: a main feature is broken"],
  ["medium", "Medium: broken, with a workaround"], ["low", "Low: cosmetic or minor"]];
const RASTER = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_SCREENSHOT = 10 * 1024 * 1024;
const MAX_FILES = 20;
const OPEN_RUN = new Set(["pending", "running", "awaiting_approval"]);

export async function bugView(main, ctx) {
  document.title = "Report a bug · Baton";
  if (!ctx.me.rights.includes("report_bug")) {
    main.append(emptyState("This key may not report bugs.", "Sign in with a human, agent or admin key of the project."));
    return;
  }
  main.append(spinner("Loading your projects…"));
  const projects = (await all("/projects", {}, { signal: ctx.signal })).items;
  if (!projects.length) {
    replaceChildren(main, emptyState("No project to report a bug in.", "This key lists no project. Ask an admin for a key of your project."));
    return;
  }
  const wanted = ctx.query.get("project");
  const aboutTask = ctx.query.get("task");
  let about = null;
  if (aboutTask) about = await get(`/tasks/${id(aboutTask)}`, { signal: ctx.signal }).catch(() => null);

  const project = h("select", { name: "project", id: "bug-project", testid: "bug-project", required: true },
    projects.map((p) => h("option", { value: p.id, selected: p.id === (wanted || about?.project_id) }, `${p.name} (${p.id})`)));
  const run = h("select", { name: "run", id: "bug-run", testid: "bug-run" });
  const title = h("input", { type: "text", name: "title", id: "bug-title", testid: "bug-title", required: true, maxlength: 200,
    placeholder: "What is wrong, in one line", autocomplete: "off" });
  const description = h("textarea", { name: "description", id: "bug-description", testid: "bug-description", rows: 6, maxlength: 9000,
    placeholder: "Steps to reproduce, what you expected, what happened instead",
    value: about ? `About task "${about.title}" (${about.id}).\n\n` : "" });
  const severity = h("select", { name: "severity", id: "bug-severity", testid: "bug-severity" },
    SEVERITIES.map(([value, label]) => h("option", { value, selected: value === "medium" }, label)));
  const canUpload = ctx.me.principal !== "agent";
  const files = h("input", { type: "file", name: "screenshots", id: "bug-screenshots", testid: "bug-screenshots",
    accept: RASTER.join(","), multiple: true, disabled: !canUpload });
  const chosen = h("ul", { class: "file-list", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", testid: "bug-submit" }, "Report the bug");
  const status = h("div", { class: "form-status", "aria-live": "polite", testid: "bug-status" });

  async function loadRuns() {
    replaceChildren(run, h("option", { value: "" }, "The project's backlog (a run for bug reports)"));
    try {
      const runs = (await get(path(`/projects/${id(project.value)}/runs`, { limit: 100 }), { signal: ctx.signal })).items
        .filter((r) => OPEN_RUN.has(r.status) && !r.release_task_id);
      const want = ctx.query.get("run") || about?.run_id;
      for (const r of runs) run.append(h("option", { value: r.id, selected: r.id === want }, `${r.title} (${r.status.replaceAll("_", " ")})`));
    } catch (error) {
      if (error.name !== "AbortError") status.replaceChildren(errorBox(error, "list the project's runs"));
    }
  }
  project.addEventListener("change", loadRuns);
  files.addEventListener("change", () => {
    replaceChildren(chosen, [...files.files].map((file) => h("li", null, `${file.name} · ${bytes(file.size)}`,
      RASTER.includes(file.type) ? null : h("span", { class: "bad" }, " — not a PNG, JPEG, GIF or WebP image"),
      file.size > MAX_SCREENSHOT ? h("span", { class: "bad" }, " — larger than 10 MB") : null)));
  });

  const form = h("form", { class: "bug-form", testid: "bug-form", "aria-labelledby": "bug-heading" },
    h("h1", { id: "bug-heading" }, "Report a bug"),
    h("p", { class: "muted" }, "It becomes a bug task: agents pick it up at the first stage, fix it, and it goes through QA and the rest like any task."),
    h("label", { for: "bug-project" }, "Project"), project,
    h("label", { for: "bug-run" }, "Run"), run,
    h("label", { for: "bug-title" }, "Title"), title,
    h("label", { for: "bug-description" }, "Description"), description,
    h("label", { for: "bug-severity" }, "Severity"), severity,
    h("label", { for: "bug-screenshots" }, "Screenshots (optional)"), files,
    canUpload ? h("p", { class: "hint" }, "PNG, JPEG, GIF or WebP, up to 10 MB each, at most 20.")
      : h("p", { class: "hint" }, "An agent key attaches screenshots only under a claim of the task: report the bug, then attach them from the agent."),
    chosen,
    h("div", { class: "actions" }, submit), status);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const pictures = canUpload ? [...files.files] : [];
    const problem = !title.value.trim() ? "Give the bug a title."
      : pictures.length > MAX_FILES ? `Attach at most ${MAX_FILES} screenshots.`
        : pictures.find((f) => !RASTER.includes(f.type)) ? "Screenshots must be PNG, JPEG, GIF or WebP images."
          : pictures.find((f) => f.size > MAX_SCREENSHOT) ? "A screenshot is larger than 10 MB: crop or compress it." : null;
    if (problem) { status.replaceChildren(h("p", { class: "error", role: "alert" }, problem)); return; }
    submit.disabled = true;
    status.replaceChildren(h("p", { class: "muted" }, "Reporting…"));
    let task;
    try {
      const body = { title: title.value.trim(), description: description.value.trim(), severity: severity.value };
      if (run.value) body.run_id = run.value;
      task = await post(`/projects/${id(project.value)}/bugs`, body, { headers: { "Idempotency-Key": idempotencyKey() } });
    } catch (error) {
      submit.disabled = false;
      status.replaceChildren(errorBox(error, "report the bug"));
      return;
    }
    const link = h("a", { href: `#/tasks/${encodeURIComponent(task.id)}`, testid: "bug-created", data: { taskId: task.id } }, task.title);
    const progress = h("ul", { class: "file-list" });
    status.replaceChildren(h("p", { class: "good" }, "Bug reported: ", link, ` (priority ${task.priority}, run ${task.run_id}).`), progress);
    for (const file of pictures) {
      const line = h("li", null, `${file.name}: uploading…`);
      progress.append(line);
      try {
        await uploadScreenshot(task.id, file);
        line.textContent = `${file.name}: attached`;
        line.className = "good";
        line.dataset.testid = "bug-screenshot-attached";
      } catch (error) {
        line.replaceChildren(`${file.name}: not attached — ${error.message}`);
        line.className = "bad";
      }
    }
    form.reset();
    replaceChildren(chosen);
    submit.disabled = false;
  });

  replaceChildren(main, form);
  await loadRuns();
  title.focus();
}

/** A name the API takes for a proof (letters, digits, ".", "_", "-"; no ".."; at most 128). */
export function proofFilename(name) {
  const safe = String(name).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/\.{2,}/g, ".").replace(/^[._-]+/, "").slice(-128);
  return safe || "screenshot.png";
}

async function sha256(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Declare the screenshot as a proof of the bug task, upload it with the presigned form, confirm. */
async function uploadScreenshot(taskId, file) {
  const declared = await post(`/tasks/${id(taskId)}/proofs`, {
    type: "screenshot", filename: proofFilename(file.name), content_type: file.type, size: file.size,
    sha256: await sha256(file),
  });
  const form = new FormData();
  for (const [name, value] of Object.entries(declared.upload.fields)) form.append(name, value);
  form.append("file", file);
  try {
    // The bucket is another origin: the answer is opaque to the page; the confirmation below is
    // what tells whether the bytes arrived (size, type and checksum checked by Baton).
    await fetch(declared.upload.url, { method: "POST", body: form, mode: "no-cors", credentials: "omit", referrerPolicy: "no-referrer" });
  } catch {
    throw new Error("the upload to the proof bucket failed; check your connection and report the screenshot again");
  }
  await post(`/proofs/${id(declared.proof.id)}/confirm`);
}
