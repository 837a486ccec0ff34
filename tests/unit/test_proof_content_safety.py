"""Proof content safety without AWS: which content types fit a proof type, and the types a URL
serves (only raster images inline, everything else an attachment)."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import RuleViolationError
from chalicelib.domain.proofs import (allowed_content_types, attachment_content_type, check_proof_content_type,
                                      inline_image_type)


def test_a_screenshot_is_a_raster_image_only():
    assert allowed_content_types("screenshot") == ["image/gif", "image/jpeg", "image/png", "image/webp"]
    with pytest.raises(RuleViolationError) as refused:
        check_proof_content_type("screenshot", "image/svg+xml")
    assert "SVG" in refused.value.message


def test_the_served_types():
    assert [inline_image_type(t) for t in ("image/png", "IMAGE/PNG; x=y", "image/svg+xml", "text/html")] == \
        ["image/png", "image/png", None, None]
    assert attachment_content_type("text/html") == "text/plain; charset=utf-8"
    assert attachment_content_type("image/svg+xml") == "text/plain; charset=utf-8"
    assert attachment_content_type("application/javascript") == "application/octet-stream"
    assert attachment_content_type("application/x-shockwave-flash") == "application/octet-stream"
    assert attachment_content_type("image/webp") == "image/webp"
