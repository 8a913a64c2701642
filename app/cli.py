"""`proactive-care`: a thin command line over the packages' own functions.

Each package registers its verbs (``register(subparsers)``); this module only parses,
delegates, and turns a ``UserInputError`` into one clear sentence and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

from features.errors import UserInputError

# Modules that each add their verbs; kept as names so a verb's heavy imports load only when used.
VERB_MODULES = (
    "synthetic_cohort.cli",  # cohort, cohort validate
    "synthetic_cohort.importers.cli",  # import synthea | fhir
    "model.cli",  # train, score, evaluate
    "app.store_cli",  # db upgrade, load
    "app.careplans_cli",  # careplans export
)

STREAMLIT_ENTRY = Path(__file__).resolve().parent.parent / "streamlit_app.py"


def serve(args: argparse.Namespace) -> int:
    """Serve the Streamlit app (blocks until stopped)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(STREAMLIT_ENTRY),
        "--server.port", str(args.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proactive-care",
        description="Risk stratification and care-planning caseloads for GP practices, MDTs, "
        "care navigators and commissioners.",
    )
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module_name in VERB_MODULES:
        importlib.import_module(module_name).register(subparsers)
    serve_parser = subparsers.add_parser("serve", help="serve the app at http://localhost:8501")
    serve_parser.add_argument("--port", type=int, default=8501)
    serve_parser.set_defaults(handler=serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserInputError as error:
        print(f"proactive-care {args.verb}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
