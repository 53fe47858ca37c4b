"""`install import`: verify, check compatibility, plan, then packages, files,
database, services, and an audit of the result."""

import argparse
from typing import Dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replace-db", action="store_true",
                        help="replace an existing non-empty database (the old one is kept "
                             "until the import commits)")


def settings_from_args(args: argparse.Namespace) -> Dict[str, str]:
    return {"IMPORT/replaceDb": "true"} if getattr(args, "replace_db", False) else {}
