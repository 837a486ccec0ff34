"""Render Baton's deployable template (run by ``make package``).

1. Reads ``infra/resources.yaml`` and embeds, in every state machine whose ``Metadata.baton.definition``
   names an ASL file (relative to ``infra/``), that file's JSON as ``Properties.Definition``; the
   ``${...}`` placeholders of the ASL are resolved by CloudFormation from the resource's
   ``DefinitionSubstitutions`` (checked here: every placeholder must have a substitution).
2. Writes the result to ``<out>/merge.json`` (JSON, so that chalice keeps writing ``sam.json``).
3. Runs chalice's ``package`` (as ``chalice package --stage <stage> --merge-template <out>/merge.json
   <out>/`` would), which writes ``<out>/sam.json`` and ``<out>/deployment.zip`` -- but for the
   Lambda runtime chosen here (``--runtime``, default python3.13) and x86_64, not for the
   interpreter that runs this script. Chalice 1.34 has no setting for that: it takes the runtime
   from ``sys.version_info`` (``Config.lambda_python_version``) and builds the dependencies for it.
   So, for the duration of the packaging, two things are overridden (``chalice_packaging``):

   * ``Config.lambda_python_version`` returns ``--runtime``: every function's ``Runtime`` and the
     name of chalice's cached zip follow it;
   * the deployment packager vendors ``requirements.txt`` with ``pip install --only-binary=:all:
     --platform manylinux_2_X_x86_64 --python-version 3.13 --implementation cp --abi cp313``
     (``install_dependencies``): binary wheels for the runtime or nothing, no source build with
     the local interpreter, no ``*.pyc``; and it leaves ``__pycache__`` out of ``chalicelib/``.

   The wheels are kept in ``.chalice/deployments/wheels-<runtime>-<arch>/`` (``pip download``),
   so a rebuild without network uses the wheels already there. ``sam.json`` is checked afterwards.

Usage: python infra/build_template.py [--stage dev] [--out out] [--runtime python3.13] [--rebuild]
       [--render-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import yaml

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
TEMPLATE = INFRA / "resources.yaml"
PLACEHOLDER = re.compile(r"\$\{([^}!][^}]*)\}")

# Lambda Python runtimes that accept new functions (python3.11 and older are blocked since
# mid-2026), with the glibc of the OS under them (Amazon Linux 2023: 2.34). Wheels are picked for
# manylinux_2_17 ... manylinux_2_<minor>.
RUNTIMES = {"python3.12": (2, 34), "python3.13": (2, 34)}
DEFAULT_RUNTIME = "python3.13"
ARCHITECTURE = "x86_64"                       # Lambda's name; the wheels' platform tag says x86_64 too
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
KEEP_CACHED_ZIPS = 3                          # in .chalice/deployments, per runtime and architecture


def definition_file(resource: dict[str, Any]) -> Path | None:
    name = ((resource.get("Metadata") or {}).get("baton") or {}).get("definition")
    return INFRA / name if name else None


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(template_path: Path = TEMPLATE) -> dict[str, Any]:
    template = yaml.safe_load(template_path.read_text())
    for logical_id, resource in template["Resources"].items():
        path = definition_file(resource)
        if path is None:
            continue
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            raise SystemExit(f"{logical_id}: Metadata.baton.definition is only for state machines")
        text = path.read_text()
        props = resource.setdefault("Properties", {})
        missing = placeholders(text) - set(props.get("DefinitionSubstitutions") or {})
        if missing:
            raise SystemExit(f"{logical_id}: {path.name} uses {sorted(missing)} without DefinitionSubstitutions")
        props["Definition"] = json.loads(text)
    return template


# --- dependencies for the target runtime -------------------------------------------------------

def pip_target_options(runtime: str, architecture: str = ARCHITECTURE) -> list[str]:
    """pip options that select binary wheels for a Lambda runtime instead of the running Python."""
    if architecture != "x86_64":
        raise SystemExit(f"architecture {architecture}: only x86_64 is packaged")
    version = runtime.removeprefix("python")
    glibc_major, glibc_minor = RUNTIMES[runtime]
    platforms = [f"manylinux_{glibc_major}_{minor}_x86_64" for minor in range(glibc_minor, 16, -1)]
    platforms.append("manylinux2014_x86_64")   # pip adds manylinux2010/manylinux1 for this one
    return ["--only-binary=:all:", *(f"--platform={p}" for p in platforms), "--python-version", version,
            "--implementation", "cp", "--abi", "cp" + version.replace(".", "")]


def marker_environment(runtime: str) -> dict[str, str]:
    version = runtime.removeprefix("python")
    return {"python_version": version, "python_full_version": version + ".0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "implementation_version": version + ".0",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"}


def check_markers(site_packages: Path, runtime: str) -> None:
    """pip evaluates environment markers (``; python_version < "3.13"``) for the interpreter that
    runs it, even with ``--python-version``. Fail when the runtime would need a dependency that was
    left out for that reason; say so when one is vendored that the runtime does not need."""
    from packaging.requirements import Requirement

    target = marker_environment(runtime)
    needed, surplus = [], []
    for metadata in sorted(site_packages.glob("*.dist-info/METADATA")):
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.partition(":")[2].strip())
            if requirement.marker is None:
                continue
            here = requirement.marker.evaluate({"extra": ""})
            there = requirement.marker.evaluate({**target, "extra": ""})
            if there and not here:
                needed.append(f"{metadata.parent.name}: {requirement}")
            elif here and not there:
                surplus.append(f"{metadata.parent.name}: {requirement}")
    if surplus:
        print(f"note: required for the local Python only, not for {runtime} (harmless): {surplus}")
    if needed:
        raise SystemExit(f"{runtime} needs dependencies that pip, running on Python "
                         f"{sys.version_info[0]}.{sys.version_info[1]}, left out (add them to requirements.txt "
                         f"with their marker): {needed}")


def install_dependencies(requirements: Path, target: Path, runtime: str, architecture: str = ARCHITECTURE) -> None:
    """Vendor ``requirements`` into ``target`` as binary wheels for ``runtime`` on ``architecture``."""
    options = pip_target_options(runtime, architecture)
    wheelhouse = ROOT / ".chalice" / "deployments" / f"wheels-{runtime}-{architecture}"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    download = subprocess.run([*pip, "download", "--quiet", "--retries", "1", "--dest", str(wheelhouse), *options,
                               "-r", str(requirements)], capture_output=True, text=True)
    if download.returncode != 0:
        print(f"warning: pip download failed; trying the wheels already in {wheelhouse}:\n"
              f"{download.stderr[-2000:]}", file=sys.stderr)
    install = subprocess.run([*pip, "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
                              "--no-compile", "--no-warn-script-location", "--target", str(target), *options,
                              "-r", str(requirements)], capture_output=True, text=True)
    if install.returncode != 0:
        raise SystemExit(f"no binary wheels for {runtime} {architecture} satisfy {requirements.name}:\n"
                         f"{download.stderr[-2000:]}\n{install.stderr[-3000:]}")
    shutil.rmtree(target / "bin", ignore_errors=True)     # console scripts with this machine's shebang
    check_markers(target, runtime)


# --- chalice, packaging for the chosen runtime -------------------------------------------------

def runtime_packager(rebuild: bool) -> type:
    from chalice.deploy.packager import LambdaDeploymentPackager

    class RuntimeDeploymentPackager(LambdaDeploymentPackager):
        """chalice's zip (app.py, chalicelib/, chalice's runtime files, vendor/), with the
        dependencies from ``install_dependencies``; cached zips are reused unless ``rebuild``."""

        def deployment_package_filename(self, project_dir: str, python_version: str) -> str:
            # e.g. .chalice/deployments/platform-wheels-x86_64-<hash>-python3.13.zip: never one
            # that chalice's own dependency builder made
            path = Path(super().deployment_package_filename(project_dir, python_version))
            return str(path.with_name(f"platform-wheels-{self._architecture}-{path.name}"))

        def create_deployment_package(self, project_dir: str, python_version: str) -> str:
            filename = Path(self.deployment_package_filename(project_dir, python_version))
            if filename.is_file() and not rebuild:
                self._ui.write(f"Reusing {filename.name} (same requirements.txt, app code and runtime).\n")
                return str(filename)
            self._ui.write(f"Creating deployment package for {python_version} {self._architecture}.\n")
            filename.parent.mkdir(parents=True, exist_ok=True)
            partial = filename.with_name(f"{filename.name}.{os.getpid()}.part")
            try:
                with tempfile.TemporaryDirectory() as deps:
                    self._build_python_dependencies(python_version, self._get_requirements_filename(project_dir), deps)
                    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
                        self._add_py_deps(z, deps_dir=deps)
                        self._add_app_files(z, project_dir)
                        self._add_vendor_files(z, os.path.join(project_dir, self._VENDOR_DIR))
                os.replace(partial, filename)                 # a concurrent reader never sees half a zip
            finally:
                partial.unlink(missing_ok=True)
            # a zip per version of the app code: keep the latest few
            with contextlib.suppress(OSError):            # another packager may be pruning too
                cached = sorted(filename.parent.glob(f"platform-wheels-{self._architecture}-*-{python_version}.zip"),
                                key=lambda path: path.stat().st_mtime, reverse=True)
                for stale in cached[KEEP_CACHED_ZIPS:]:
                    stale.unlink(missing_ok=True)
            return str(filename)

        def _build_python_dependencies(self, python_version: str, requirements_filepath: str,
                                       site_packages_dir: str) -> None:
            if Path(requirements_filepath).is_file():
                install_dependencies(Path(requirements_filepath), Path(site_packages_dir), python_version,
                                     self._architecture)

        def _iter_chalice_lib_if_needed(self, project_dir: str) -> Iterator[tuple[str, str]]:
            # chalice takes every file under chalicelib/, bytecode of the local interpreter included
            for full_path, zip_path in super()._iter_chalice_lib_if_needed(project_dir):
                if "__pycache__" not in Path(zip_path).parts and not zip_path.endswith((".pyc", ".pyo")):
                    yield full_path, zip_path

    return RuntimeDeploymentPackager


@contextlib.contextmanager
def chalice_packaging(runtime: str, rebuild: bool) -> Iterator[None]:
    """While active, chalice packages for ``runtime`` (see the module docstring)."""
    from chalice.config import Config
    from chalice.deploy import deployer

    # chalice 1.34 is pinned (requirements-dev.txt); a renamed attribute makes patch.object fail loudly
    with mock.patch.object(Config, "lambda_python_version", property(lambda self: runtime)), \
            mock.patch.object(deployer, "LambdaDeploymentPackager", runtime_packager(rebuild)):
        yield


def chalice_package(stage: str, merge: Path, out: Path, runtime: str, rebuild: bool) -> None:
    from chalice.cli.factory import CLIFactory

    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION") or "us-east-1")   # chalice needs one
    factory = CLIFactory(str(ROOT), environ=os.environ)
    config = factory.create_config_obj(stage, user_provided_params={"lambda_architecture": ARCHITECTURE})
    if config.automatic_layer:
        raise SystemExit("automatic_layer is not supported: its layer would be built for the local interpreter")
    with chalice_packaging(runtime, rebuild):
        packager = factory.create_app_packager(config, factory.create_package_options(), "cloudformation", "json",
                                               str(merge))
        packager.package_app(config, str(out), stage)


def check_template(sam: dict[str, Any], runtime: str) -> int:
    """Every function runs ``runtime`` on ``ARCHITECTURE``; returns how many functions there are."""
    function_globals = (sam.get("Globals") or {}).get("Function") or {}
    wrong = [] if function_globals.get("Runtime") in (None, runtime) else [f"Globals: {function_globals['Runtime']}"]
    functions = {name: resource.get("Properties") or {} for name, resource in sam["Resources"].items()
                 if resource.get("Type") in FUNCTION_TYPES}
    for name, props in functions.items():
        got = props.get("Runtime", function_globals.get("Runtime"))
        arch = props.get("Architectures", function_globals.get("Architectures"))
        if got != runtime or arch != [ARCHITECTURE]:
            wrong.append(f"{name}: {got} {arch}")
    if wrong or not functions:
        raise SystemExit(f"sam.json: expected every function on {runtime} [{ARCHITECTURE}], got {wrong or 'none'}")
    return len(functions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", default="out", help="output directory (relative to the project root, or absolute)")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=sorted(RUNTIMES),
                        help=f"Lambda runtime of every function (default {DEFAULT_RUNTIME}); the wheels follow it")
    parser.add_argument("--rebuild", action="store_true",
                        help="build the deployment zip even if .chalice/deployments has one for the same inputs")
    parser.add_argument("--render-only", action="store_true", help="write merge.json, skip chalice package")
    args = parser.parse_args(argv)

    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    merge = out / "merge.json"
    merge.write_text(json.dumps(render(), indent=2) + "\n")
    print(f"wrote {merge.relative_to(ROOT) if merge.is_relative_to(ROOT) else merge}")
    if args.render_only:
        return 0

    chalice_package(args.stage, merge, out, args.runtime, args.rebuild)
    functions = check_template(json.loads((out / "sam.json").read_text()), args.runtime)
    print(f"wrote {out / 'sam.json'} ({functions} functions on {args.runtime} {ARCHITECTURE}) "
          f"and {out / 'deployment.zip'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
