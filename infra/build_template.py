"""Render Baton's deployable template (run by ``make package``).

1. Reads ``infra/resources.yaml`` and embeds, in every state machine whose ``Metadata.baton.definition``
   names an ASL file (relative to ``infra/``), that file's JSON as ``Properties.Definition``; the
   ``${...}`` placeholders of the ASL are resolved by CloudFormation from the resource's
   ``DefinitionSubstitutions`` (checked here: every placeholder must have a substitution).
2. Writes the result to ``<out>/merge.json`` (JSON, so that chalice keeps writing ``sam.json``).
3. Runs ``chalice package --stage <stage> --merge-template <out>/merge.json <out>/``, which writes
   ``<out>/sam.json`` and ``<out>/deployment.zip``.

Usage: python infra/build_template.py [--stage dev] [--out out] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
TEMPLATE = INFRA / "resources.yaml"
PLACEHOLDER = re.compile(r"\$\{([^}!][^}]*)\}")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", default="out", help="output directory (relative to the project root)")
    parser.add_argument("--render-only", action="store_true", help="write merge.json, skip chalice package")
    args = parser.parse_args(argv)

    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    merge = out / "merge.json"
    merge.write_text(json.dumps(render(), indent=2) + "\n")
    print(f"wrote {merge.relative_to(ROOT) if merge.is_relative_to(ROOT) else merge}")
    if args.render_only:
        return 0

    chalice = Path(sys.executable).with_name("chalice")
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "us-east-1")   # chalice package needs one
    command = [str(chalice) if chalice.exists() else "chalice", "package", "--stage", args.stage,
               "--merge-template", str(merge), str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env)
    if result.returncode == 0:
        print(f"wrote {out / 'sam.json'} and {out / 'deployment.zip'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
