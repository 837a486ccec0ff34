"""The dashboard as the API serves it: GET /ui and its assets need no key, always carry the page's
security headers (a CSP without inline script or eval that allows images and uploads from the
proof bucket's own origin), and the assets are what the page says they are. Plus the two routes
the dashboard added to the API: GET /whoami and GET /proofs/{id}/text.

The page's behaviour in a browser is tests/browser's; here are the HTTP facts and static checks of
the assets that keep the page safe by construction (no HTML sinks, no eval, no inline handlers)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chalicelib.api.dashboard import ASSETS
from tests.support.api import start_run
from tests.support.proofs import store_proof

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ROOT = Path(__file__).resolve().parents[2]


def csp_of(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def bucket_origin(services) -> str:
    url = services.proofs.objects.presigned_get("x", expires_in=60, filename="x")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_the_page_needs_no_key_and_is_html(api):
    response = api.as_key(None).get("/ui")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="ui/app.js"></script>' in response.body


@pytest.mark.parametrize("path", ["/ui", "/ui/app.js", "/ui/style.css", "/ui/favicon.svg"])
def test_every_answer_carries_the_security_headers(api, services, path):
    response = api.as_key(None).get(path)
    assert response.status_code == 200
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]            # no 'unsafe-inline', no 'unsafe-eval', no nonce
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"] and csp["trusted-types"] == ["'none'"]
    origin = bucket_origin(services)
    assert csp["img-src"] == ["'self'", origin]
    assert csp["connect-src"] == ["'self'", origin]   # the bug form's screenshot upload (presigned POST)
    assert not any("unsafe" in word or word in ("*", "data:", "blob:") for words in csp.values() for word in words)


def test_the_bucket_origin_is_the_one_presigned_urls_use(api, services):
    """On the local stack moto's server; on AWS the bucket's S3 endpoint: asked of the proof store."""
    post_url = services.proofs.objects.presigned_post("k", content_type="image/png", size=1, expires_in=60)["url"]
    parts = urlsplit(post_url)
    assert f"{parts.scheme}://{parts.netloc}" in csp_of(api.as_key(None).get("/ui"))["img-src"]


@pytest.mark.parametrize("name,content_type", [("app.js", "text/javascript; charset=utf-8"),
                                               ("style.css", "text/css; charset=utf-8"),
                                               ("favicon.svg", "image/svg+xml")])
def test_assets_are_served_with_their_type_and_revalidated(api, name, content_type):
    response = api.as_key(None).get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.body == (ASSETS / name).read_bytes()
    again = api.as_key(None).get(f"/ui/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.body in (b"", "")


@pytest.mark.parametrize("name", ["nothing.js", "..%2Fapi%2Fdashboard.py", "%2E%2E", "index.html%00.js",
                                  "dashboard.py", "LICENSE"])
def test_only_the_dashboards_own_files_are_served(api, name):
    response = api.as_key(None).get(f"/ui/{name}")
    assert response.status_code == 404
    assert response.data["error"]["code"] == "not_found"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_key_is_not_needed_nor_looked_at(api):
    """A bad key on a public path is not refused (the page loads before anyone signs in)."""
    assert api.as_key("bt_" + "x" * 43).get("/ui").status_code == 200


# ---------------------------------------------------------------- the assets, statically


def dashboard_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in ASSETS.iterdir() if p.is_file()}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data


def test_the_page_has_no_inline_script_style_or_handler_and_loads_only_its_own_files():
    parser = Tags()
    parser.feed((ASSETS / "index.html").read_text())
    assert parser.script_text.strip() == ""
    names = set(dashboard_files())
    for tag, attrs in parser.tags:
        assert "style" not in attrs and tag != "style", tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href"):
            if name in attrs:   # relative, so that a stage prefix of API Gateway (/api/ui) keeps working
                assert attrs[name].startswith("ui/") and attrs[name][3:] in names, attrs[name]


def test_no_script_uses_an_html_sink_eval_or_a_remote_url():
    """Text from agents reaches the page only through textContent (dom.js's h()); the CSP's Trusted
    Types would make the browser refuse these sinks anyway, so using one would break the page."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"setAttribute\(\s*['\"](on\w+|style)|\.style\.cssText|import\(|"
                       r"setTimeout\(\s*['\"`]|DOMParser|createContextualFragment|srcdoc")
    # URLs go into the page only through dom.js, which lets through http(s) and the app's own routes
    url_sinks = re.compile(r"setAttribute\(\s*['\"](href|src)|\.(href|src)\s*=[^=]")
    for name, text in dashboard_files().items():
        if not name.endswith(".js"):
            continue
        code = re.sub(r"^\s*//.*$", "", text, flags=re.M)     # the comments may name what the code avoids
        found = [m.group(0) for m in sinks.finditer(code)] + \
            ([] if name == "dom.js" else [m.group(0) for m in url_sinks.finditer(code)])
        assert found == [], f"{name} uses {found}"
        imports = re.findall(r"""^import .* from ["']([^"']+)["'];$""", text, flags=re.M)
        assert all(re.fullmatch(r"\./[a-z-]+\.js", target) and (ASSETS / target[2:]).exists() for target in imports), imports
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{name} names a remote URL"


def test_the_assets_are_small():
    total = sum(len(text.encode()) for text in dashboard_files().values())
    assert total < 200 * 1024, f"the dashboard's assets are {total} bytes; the budget is 200 KB"


def test_every_test_hook_the_docs_list_is_in_the_page():
    """docs/dashboard.md lists the stable data-testid hooks; each is made by a script."""
    doc = (ROOT / "docs" / "dashboard.md").read_text()
    listed = set(re.findall(r"^\| `([a-z<>-]+)` \|", doc, flags=re.M))
    assert {"signin-key", "signin-submit", "run-row", "lane-<stage>", "task-card", "approve-<gate>", "reject-<gate>",
            "gate-comment", "kill-run", "event-row", "handoff-card", "proof-thumb", "bug-title", "bug-submit"} <= listed
    scripts = "".join(text for name, text in dashboard_files().items() if name.endswith(".js"))
    for hook in listed:
        stem = hook.split("<")[0]
        assert f'"{stem}' in scripts or f"`{stem}" in scripts, f"{hook} is listed in docs/dashboard.md but made nowhere"


# ---------------------------------------------------------------- GET /whoami


def test_whoami_tells_the_caller_who_it_is_and_what_it_may_do(api, project):
    me = api.get("/whoami").data
    assert me["principal"] == "admin" and me["all_projects"] is True
    assert "decide_approval" not in me["rights"] and "manage_keys" in me["rights"]
    human = api.post("/keys", {"name": "alice", "principal": "human", "project_ids": ["demo"]}).data
    agent = api.post("/keys", {"name": "bot", "principal": "agent", "project_ids": ["demo"]}).data
    seen = api.as_key(human["key"]).get("/whoami").data
    assert seen == {"key_id": human["id"], "name": "alice", "principal": "human", "project_ids": ["demo"],
                    "all_projects": False, "task_id": None, "rights": seen["rights"]}
    assert {"decide_approval", "manage_project", "report_bug"} <= set(seen["rights"])
    assert "manage_keys" not in seen["rights"]
    bot = api.as_key(agent["key"]).get("/whoami").data
    assert bot["principal"] == "agent"
    assert "decide_approval" not in bot["rights"] and "manage_project" not in bot["rights"]
    assert "report_bug" in bot["rights"]
    assert human["key"] not in str(seen) and agent["key"] not in str(bot)    # never the key material


def test_whoami_without_a_key_is_401_and_takes_no_query(api):
    assert api.as_key(None).get("/whoami").status_code == 401
    assert api.get("/whoami?principal=admin").status_code == 400


# ---------------------------------------------------------------- GET /proofs/{id}/text


def test_a_text_proof_is_read_through_the_api_with_a_download_url(api, services, project):
    run = start_run(api, tasks=1, stages=["dev"])
    task_id = api.get(f"/runs/{run['id']}/tasks").data["items"][0]["id"]
    log = "line one\n<img src=x onerror=alert(1)>\nünïcode\n".encode()
    proof = store_proof(api, services, task_id, "log", log, "run.log", "text/plain")
    body = api.get(f"/proofs/{proof['id']}/text").data
    assert body["text"] == log.decode() and body["truncated"] is False and body["size"] == len(log)
    assert urlsplit(body["download_url"]).scheme in ("http", "https")
    assert "attachment" in body["download_url"]           # the presigned GET is always an attachment


def test_an_image_has_no_text_and_a_long_log_is_cut(api, services, project):
    run = start_run(api, tasks=1, stages=["dev"])
    task_id = api.get(f"/runs/{run['id']}/tasks").data["items"][0]["id"]
    shot = store_proof(api, services, task_id, "screenshot", PNG, "a.png", "image/png")
    assert api.get(f"/proofs/{shot['id']}/text").data["text"] is None
    big = ("é" * 300_000).encode()       # 600,000 bytes, cut inside a character at 512 KB
    long_log = store_proof(api, services, task_id, "log", big, "big.log", "text/plain")
    body = api.get(f"/proofs/{long_log['id']}/text").data
    assert body["truncated"] is True and body["text"] == "é" * (512 * 1024 // 2)
    binary = store_proof(api, services, task_id, "log", b"\x00\xff\xfe binary", "blob.bin", "application/octet-stream")
    assert api.get(f"/proofs/{binary['id']}/text").data["text"] is None


def test_a_proof_not_yet_stored_has_no_text(api, services, project):
    from tests.support.proofs import declare

    run = start_run(api, tasks=1, stages=["dev"])
    task_id = api.get(f"/runs/{run['id']}/tasks").data["items"][0]["id"]
    pending = declare(api, task_id, "log", b"x", "x.log", "text/plain").data["proof"]
    response = api.get(f"/proofs/{pending['id']}/text")
    assert response.status_code == 409 and response.data["error"]["code"] == "proof_not_stored"
