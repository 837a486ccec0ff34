"""Create the first admin key of a deployment (the API needs a key to create keys).

Usage: ``BATON_TABLE=<table> python -m chalicelib.bootstrap_admin [--name NAME]``, with AWS
credentials that may write the table. Prints the key once; only its sha256 is stored.
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError, ClientError

from .bootstrap import build_services
from .config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create an admin API key for Baton and print it once.")
    parser.add_argument("--name", default="bootstrap-admin", help="a name that says whose key it is")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        api_key, key = build_services(settings).keys.bootstrap_admin(args.name)
    except (BotoCoreError, ClientError) as error:
        print(f"baton: could not write the key to table {settings.table_name!r}: {error}", file=sys.stderr)
        return 1
    print(f"admin key {api_key.id} ({api_key.name}) created; store it now, it is not shown again:")
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
