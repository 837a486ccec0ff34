"""Proof content safety: a proof's declared content type must fit its type, and no URL Baton hands
out makes a browser render a proof as a page. Only raster images (png, jpeg, gif, webp; never SVG)
are ever inline, as exactly their image type; everything else is an attachment served as plain
text or ``application/octet-stream``.

Through the API on in-process moto; the rules alone are ``tests/unit/test_proof_content_safety.py``
and what S3 really serves over HTTP is ``tests/e2e/test_proof_uploads.py``."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from chalicelib.domain.proofs import allowed_content_types
from tests.support.api import start_run
from tests.support.aws import table_snapshot
from tests.support.proofs import bucket_keys, context_proof, declare, store_proof

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<html><script>alert(document.domain)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture
def task(api, project) -> dict[str, Any]:
    run = start_run(api, tasks=1, stages=["dev", "qa"])
    return api.get(f"/runs/{run['id']}/tasks").data["items"][0]


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}


# --------------------------------------------------------------------------- declarations


REFUSED = [("screenshot", "text/html", HTML, "page.png"),
           ("screenshot", "image/svg+xml", SVG, "shot.svg"),
           ("screenshot", "IMAGE/SVG+XML; charset=utf-8", SVG, "shot.svg"),
           ("screenshot", "application/octet-stream", PNG, "shot.png"),
           ("screenshot", "image/bmp", PNG, "shot.bmp"),
           ("log", "text/html", HTML, "run.log"),
           ("code_diff", "application/javascript", b"alert(1)", "change.diff"),
           ("test_result", "text/html", HTML, "junit.html"),
           ("report", "text/html", HTML, "report.html"),
           ("report", "image/svg+xml", SVG, "report.svg")]


@pytest.mark.parametrize("proof_type,content_type,data,filename", REFUSED)
def test_a_content_type_that_does_not_fit_the_proof_type_is_a_422_and_writes_nothing(
        api, services, task, proof_type, content_type, data, filename):
    before = table_snapshot(services)
    response = declare(api, task["id"], proof_type, data, filename, content_type)
    assert response.status_code == 422, response.data
    error = response.data["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "content_type_not_allowed"
    allowed = allowed_content_types(proof_type)
    assert error["details"][0]["allowed"] == allowed and error["details"][0]["loc"] == ["content_type"]
    for media in allowed:                    # the message names what is allowed
        assert media in error["message"]
    assert table_snapshot(services) == before
    assert bucket_keys(services) == []


ACCEPTED = [("screenshot", "image/png", PNG, "a.png"), ("screenshot", "image/jpeg", PNG, "a.jpg"),
            ("screenshot", "image/gif", PNG, "a.gif"), ("screenshot", "image/webp", PNG, "a.webp"),
            ("log", "text/plain; charset=utf-8", b"ok\n", "run.log"), ("log", "application/gzip", b"\x1f\x8b", "l.gz"),
            ("code_diff", "text/x-diff", b"diff\n", "c.diff"), ("code_diff", "text/x-patch", b"diff\n", "c.patch"),
            ("test_result", "application/xml", b"<testsuite/>", "j.xml"),
            ("test_result", "text/xml", b"<testsuite/>", "j.xml"),
            ("test_result", "application/json", b"{}", "r.json"),
            ("report", "application/sarif+json", b"{}", "r.sarif"), ("report", "application/json", b"{}", "r.json"),
            ("report", "text/plain", b"fine", "r.txt"),
            ("other", "text/html", HTML, "page.html"), ("other", "image/svg+xml", SVG, "logo.svg")]


def test_content_types_that_fit_their_proof_type_are_accepted(api, task):
    for proof_type, content_type, data, filename in ACCEPTED:
        response = declare(api, task["id"], proof_type, data, filename, content_type)
        assert response.status_code == 201, (proof_type, content_type, response.data)
        assert response.data["upload"]["fields"]["Content-Type"] == content_type


# --------------------------------------------------------------------------- what URLs serve


def test_a_report_downloads_as_an_attachment_of_plain_text_or_octet_stream(api, services, task):
    json_report = store_proof(api, services, task["id"], "report", b'{"ok": true}', "r.json", "application/json")
    pdf_report = store_proof(api, services, task["id"], "report", b"%PDF-1.7", "r.pdf", "application/pdf")
    for proof, served in ((json_report, "text/plain; charset=utf-8"), (pdf_report, "application/octet-stream")):
        response = api.get(f"/proofs/{proof['id']}/download")
        assert response.status_code == 302
        query = query_of(response.headers["Location"])
        assert query["response-content-disposition"] == f'attachment; filename="{proof["filename"]}"'
        assert query["response-content-type"] == served
        assert context_proof(api, task["id"], proof["id"])["url"] is None     # never inline


def test_a_png_screenshot_is_inline_in_the_context_as_exactly_image_png(api, services, task):
    shot = store_proof(api, services, task["id"], "screenshot", PNG, "home.png", "image/png")
    view = context_proof(api, task["id"], shot["id"])
    query = query_of(view["url"])
    assert query["response-content-type"] == "image/png"
    assert query["response-content-disposition"] == 'inline; filename="home.png"'
    # its download is still an attachment (of its image type)
    download = query_of(api.get(f"/proofs/{shot['id']}/download").headers["Location"])
    assert download["response-content-disposition"] == 'attachment; filename="home.png"'
    assert download["response-content-type"] == "image/png"


def test_a_jpeg_with_parameters_is_inline_as_its_bare_image_type(api, services, task):
    shot = store_proof(api, services, task["id"], "screenshot", PNG, "a.jpg", "image/jpeg; q=1")
    assert query_of(context_proof(api, task["id"], shot["id"])["url"])["response-content-type"] == "image/jpeg"


def test_html_and_svg_of_type_other_are_never_inline(api, services, task):
    for data, filename, content_type in ((HTML, "page.html", "text/html"), (SVG, "logo.svg", "image/svg+xml")):
        proof = store_proof(api, services, task["id"], "other", data, filename, content_type)
        assert context_proof(api, task["id"], proof["id"])["url"] is None
        query = query_of(api.get(f"/proofs/{proof['id']}/download").headers["Location"])
        assert query["response-content-disposition"].startswith("attachment;")
        assert query["response-content-type"] == "text/plain; charset=utf-8"


def test_a_screenshot_stored_as_html_before_the_rule_existed_is_never_served_as_html(api, services, task,
                                                                                    monkeypatch):
    import chalicelib.services.proofs as proofs_module

    monkeypatch.setattr(proofs_module, "check_proof_content_type", lambda *_: None)   # as before the rule
    legacy = store_proof(api, services, task["id"], "screenshot", HTML, "page.png", "text/html")
    monkeypatch.undo()
    assert context_proof(api, task["id"], legacy["id"])["url"] is None
    query = query_of(api.get(f"/proofs/{legacy['id']}/download").headers["Location"])
    assert query["response-content-disposition"] == 'attachment; filename="page.png"'
    assert query["response-content-type"] == "text/plain; charset=utf-8"


def test_the_adapter_refuses_to_presign_anything_but_a_raster_image_inline(services):
    objects = services.proofs.objects
    for content_type in ("text/html", "image/svg+xml", "application/octet-stream"):
        with pytest.raises(ValueError):
            objects.presigned_get("k", expires_in=60, filename="f", content_type=content_type, inline=True)
    url = objects.presigned_get("k", expires_in=60, filename='evil"; x=.html\r\n')
    query = query_of(url)
    assert query["response-content-disposition"] == 'attachment; filename="evil___x_.html"'
    assert query["response-content-type"] == "application/octet-stream"
