"""The Lambda package is built for a runtime Lambda still accepts, although this machine runs 3.11.

Runs ``infra/build_template.py --rebuild`` (what ``make package`` runs, into a temporary directory,
always building the zip): the first run downloads the runtime's wheels from PyPI into
``.chalice/deployments/wheels-<runtime>-x86_64/``; later runs use them if PyPI is unreachable and
take a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import posixpath
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Python runtimes for which Lambda creates functions (python3.11 is blocked since mid-2026).
# Deliberately not taken from build_template.py.
SUPPORTED_RUNTIMES = ("python3.12", "python3.13")
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
ELF_MACHINE_X86_64 = 62


def _build_template_module() -> Any:
    spec = importlib.util.spec_from_file_location("build_template", ROOT / "infra" / "build_template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNTIME = _build_template_module().DEFAULT_RUNTIME          # what `make package` builds for
NODOT = RUNTIME.removeprefix("python").replace(".", "")     # "313"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")                 # absolute: --out accepts one
    result = subprocess.run([sys.executable, "infra/build_template.py", "--stage", "dev", "--out", str(out),
                             "--rebuild"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert (out / "sam.json").is_file() and (out / "deployment.zip").is_file(), result.stdout
    return out


@pytest.fixture(scope="module")
def zip_names(package: Path) -> list[str]:
    with zipfile.ZipFile(package / "deployment.zip") as z:
        return z.namelist()


def test_default_runtime_is_one_lambda_accepts():
    assert RUNTIME in SUPPORTED_RUNTIMES


def test_a_retired_runtime_is_refused(tmp_path: Path):
    result = subprocess.run([sys.executable, "infra/build_template.py", "--out", str(tmp_path), "--runtime",
                             "python3.11", "--render-only"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice" in result.stderr, result.stderr
    assert not (tmp_path / "merge.json").exists()


def test_every_function_runs_the_runtime_on_x86_64(package: Path):
    sam = json.loads((package / "sam.json").read_text())
    function_globals = (sam.get("Globals") or {}).get("Function") or {}
    if "Runtime" in function_globals:
        assert function_globals["Runtime"] == RUNTIME
    functions = {name: resource["Properties"] for name, resource in sam["Resources"].items()
                 if resource["Type"] in FUNCTION_TYPES}
    assert {"APIHandler", "Dispatch", "Sweep"} <= set(functions), sorted(functions)
    for name, props in functions.items():
        runtime = props.get("Runtime", function_globals.get("Runtime"))
        assert runtime == RUNTIME and runtime in SUPPORTED_RUNTIMES, (name, runtime)
        assert props.get("Architectures", function_globals.get("Architectures")) == ["x86_64"], name
        assert props["CodeUri"] == "./deployment.zip", name
    for name, resource in sam["Resources"].items():
        if resource["Type"] in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            assert resource["Properties"].get("CompatibleRuntimes") == [RUNTIME], name


def test_compiled_modules_are_built_for_the_runtime_and_x86_64(package: Path, zip_names: list[str]):
    assert f"pydantic_core/_pydantic_core.cpython-{NODOT}-x86_64-linux-gnu.so" in zip_names
    shared = [n for n in zip_names if re.search(r"\.so(\.\d+)*$", posixpath.basename(n))]
    with zipfile.ZipFile(package / "deployment.zip") as z:
        for name in shared:
            header = z.read(name)[:20]
            assert header[:4] == b"\x7fELF" and header[4] == 2, name            # 64-bit ELF
            assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_X86_64, name
            if name.endswith(".so"):                                            # an importable module
                tag = re.search(r"\.(abi3|cpython-[^.]+)\.so$", name)
                assert tag and tag.group(1) in ("abi3", f"cpython-{NODOT}-x86_64-linux-gnu"), name


def test_vendored_wheels_are_tagged_for_the_runtime(package: Path, zip_names: list[str]):
    wheel_files = [n for n in zip_names if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
    assert any(n.startswith("pydantic_core-") for n in wheel_files), wheel_files
    with zipfile.ZipFile(package / "deployment.zip") as z:
        for name in wheel_files:
            tags = [line.split(":", 1)[1].strip() for line in z.read(name).decode().splitlines()
                    if line.startswith("Tag:")]
            assert tags, name
            for tag in tags:
                python, abi, platform = tag.split("-")
                assert abi in ("none", "abi3", f"cp{NODOT}"), (name, tag)
                assert abi != f"cp{NODOT}" or python == f"cp{NODOT}", (name, tag)
                assert platform == "any" or re.fullmatch(r"manylinux[_0-9]*_x86_64", platform), (name, tag)


def test_zip_holds_the_app_and_nothing_built_for_the_local_interpreter(zip_names: list[str]):
    assert "app.py" in zip_names
    assert "chalicelib/__init__.py" in zip_names
    assert any(n.startswith("chalicelib/api/") for n in zip_names)
    # the dashboard's static files ship with the API (GET /ui serves them from the package)
    assert {"chalicelib/dashboard/index.html", "chalicelib/dashboard/app.js", "chalicelib/dashboard/style.css"} \
        <= set(zip_names)
    assert not [n for n in zip_names if "cpython-311" in n or "cp311" in n]
    assert not [n for n in zip_names if "__pycache__/" in n or n.endswith(".pyc")]
    # boto3 comes with the Lambda runtime (requirements.txt): it is not vendored
    assert not [n for n in zip_names if n.split("/")[0] in ("boto3", "botocore")]
