"""The domain is pure: nothing in chalicelib/domain (its subpackages included) imports AWS, Chalice,
powertools or moto, nor any part of Baton outside the domain (adapters, services, api, bootstrap,
the local stack, ...), however the import is spelled: absolute, relative (``from ..adapters import
x``, ``from .. import services``), or by name at run time (``importlib.import_module``)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "chalicelib" / "domain"
DOMAIN_PACKAGE = "chalicelib.domain"
FORBIDDEN_LIBRARIES = ("boto3", "botocore", "chalice", "aws_lambda_powertools", "moto")


def package_of(path: Path, domain: Path) -> str:
    """The dotted package a module of the domain lives in (``chalicelib.domain.findings`` for
    ``domain/findings/sarif.py``)."""
    return ".".join([DOMAIN_PACKAGE, *path.relative_to(domain).parent.parts])


def absolute(module: str, level: int, package: str) -> str:
    """``from <level dots><module> import ...`` written in ``package``, as an absolute module name."""
    if level == 0:
        return module
    parts = package.split(".")
    base = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, module] if module else base)


def imported_modules(source: str, package: str) -> Iterator[str]:
    """Every module a source imports, absolute: ``from a import b`` yields ``a`` and ``a.b`` (b may be
    a module), ``import_module("x")`` and ``__import__("x")`` with a literal name yield ``x``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module or "", node.level, package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__"):
                yield node.args[0].value


def forbidden(module: str) -> bool:
    top = module.split(".")[0]
    if top in FORBIDDEN_LIBRARIES:
        return True
    in_baton = top == "chalicelib"
    in_domain = module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + ".")
    return in_baton and not in_domain and module != "chalicelib"


def offenders(domain: Path = DOMAIN) -> list[str]:
    found = []
    for path in sorted(domain.rglob("*.py")):
        package = package_of(path, domain)
        found += sorted({f"{path.relative_to(domain)}: {m}" for m in imported_modules(path.read_text(), package)
                         if forbidden(m)})
    return found


def test_the_domain_imports_no_io_library_and_nothing_of_baton_outside_the_domain():
    assert offenders() == []


def test_the_check_sees_every_spelling_of_an_import():
    in_domain, in_findings = "chalicelib.domain", "chalicelib.domain.findings"
    refused = [
        ("from ..adapters import dynamodb", in_domain),
        ("from ..adapters.dynamodb import tasks", in_domain),
        ("from .. import adapters", in_domain),
        ("from .. import services", in_domain),
        ("from ..api.errors import to_response", in_domain),
        ("from ...adapters.dynamodb.codec import serialize", in_findings),
        ("from ..bootstrap import build_services", in_domain),
        ("import chalicelib.adapters", in_domain),
        ("import chalicelib.services.tasks as tasks", in_domain),
        ("from chalicelib.api import app", in_domain),
        ("from chalicelib import bootstrap", in_domain),
        ("import boto3", in_domain),
        ("from botocore.exceptions import ClientError", in_domain),
        ("from chalice import Blueprint", in_domain),
        ("from aws_lambda_powertools import Logger", in_domain),
        ("from moto import mock_aws", in_domain),
        ("import importlib\nimportlib.import_module('chalicelib.adapters.dynamodb')", in_domain),
        ("from importlib import import_module\nimport_module('boto3')", in_domain),
        ("__import__('botocore')", in_domain),
        ("def later():\n    from ..services import tasks\n    return tasks", in_domain),
    ]
    for source, package in refused:
        assert [m for m in imported_modules(source, package) if forbidden(m)], source
    allowed = [
        ("from .enums import Role", in_domain),
        ("from . import clock", in_domain),
        ("from ..errors import InvalidInputError", in_findings),
        ("from .finding import Finding", in_findings),
        ("import chalicelib.domain.clock", in_domain),
        ("from chalicelib.domain import pipeline", in_domain),
        ("import json, re\nfrom pydantic import BaseModel", in_domain),
        ("import chalicelibrary", in_domain),
    ]
    for source, package in allowed:
        assert [m for m in imported_modules(source, package) if forbidden(m)] == [], source

