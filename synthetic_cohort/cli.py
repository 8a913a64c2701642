"""`proactive-care cohort` (generate a synthetic population) and `proactive-care cohort validate DIR`."""

from __future__ import annotations

import argparse
import sys

from features.errors import UserInputError


def _generate(args: argparse.Namespace) -> int:
    from synthetic_cohort.generate import write_population

    if args.patients is None or args.out is None:
        raise UserInputError("Give both --patients N and --out DIR to generate a population.")
    rows = write_population(args.out, args.patients, args.seed, args.profile, args.start_year, args.end_year,
                            workers=args.workers, progress=True)
    summary = ", ".join(f"{name} {count:,}" for name, count in rows.items())
    print(f"Wrote a {args.profile} population of {args.patients:,} people to {args.out} ({summary} rows).")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from synthetic_cohort.validate import validate_population

    report = validate_population(args.directory, args.profile)
    print(report.table_text())
    if report.centiles:
        print("\n" + report.centiles_text())
    print(f"\n{report.passed} of {report.measured} targets pass ({report.pass_share:.0%}). "
          f"Wrote {report.json_path} and {report.html_path}.")
    if report.implausible_people:  # a count no clinician would believe: the records are wrong, say so and fail
        print("Implausible counts in the records:\n" + "\n".join(report.implausible_people), file=sys.stderr)
        return 1
    return 0


def _handle(args: argparse.Namespace) -> int:
    if getattr(args, "cohort_verb", None) == "validate":
        return _validate(args)
    return _generate(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cohort", help="generate a synthetic GP-registered population (records as Parquet)",
        description="Generate a synthetic GP-registered population, or `cohort validate DIR` to check one "
        "against published figures.")
    parser.add_argument("--patients", type=int, help="people on the list at the start (e.g. 50000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default="leicester", help="leicester (default) or england")
    parser.add_argument("--start-year", type=int, default=2022)
    parser.add_argument("--end-year", type=int, default=2025)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--out", help="folder for the Parquet files")
    verbs = parser.add_subparsers(dest="cohort_verb", metavar="validate")
    validate = verbs.add_parser("validate", help="compare a generated population with published figures")
    validate.add_argument("directory", help="records folder written by `proactive-care cohort`")
    validate.add_argument("--profile", default=None, help="profile whose targets to use (default: the one it was made with)")
    parser.set_defaults(handler=_handle)
