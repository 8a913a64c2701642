"""`proactive-care import synthea|fhir DIR --out RECORDS_DIR`: another system's records as ours."""

from __future__ import annotations

import argparse

from synthetic_cohort.importers.assemble import ImportOptions


def print_report(report: dict) -> None:
    """The mapping report as plain tables: every code seen with its fate, then encounter classes."""
    print(f"Imported {report['people']} people from {report['source']} ({report['format']}).")
    print(f"Ethnicity unknown for {report['people_with_unknown_ethnicity']}; "
          f"IMD unknown for {report['people_with_unknown_imd']} (never invented).")
    print()
    print(f"{'SNOMED code':<18} {'rows':>5} {'people':>6}  fate")
    for entry in report["conditions"]:
        fate = (f"mapped to {entry['ltc_code']}" if entry["fate"] == "mapped"
                else f"left out: {entry['reason']}")
        print(f"{entry['code']:<18} {entry['rows']:>5} {entry['people']:>6}  "
              f"{entry['description'][:55]:<55}  {fate}")
    print()
    print(f"{'encounter class':<16} {'rows':>6}  fate")
    for entry in report["encounter_classes"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in entry["kinds"].items()) or "left out"
        print(f"{entry['class']:<16} {entry['rows']:>6}  {kinds}")
    for what, count in report.get("skipped", {}).items():
        print(f"skipped {count} {what}")
    print()
    for practice in report["practices"]:
        print(f"practice {practice['practice_code']} {practice['practice_name']}: "
              f"{practice['people']} people")


def run_import(args: argparse.Namespace) -> int:
    from synthetic_cohort.importers import REPORT_FILE, import_fhir, import_synthea

    avoid: frozenset[str] = frozenset()
    if args.avoid_numbers_in:
        from features.records import read_records

        avoid = frozenset(read_records(args.avoid_numbers_in).patients["nhs_number"].astype(str))
    options = ImportOptions(
        practice_code=args.practice_code, practice_name=args.practice_name, avoid_nhs_numbers=avoid
    )
    importer = import_synthea if args.source_format == "synthea" else import_fhir
    report = importer(args.directory, args.out, options)
    print_report(report)
    print(f"Wrote the records and {REPORT_FILE} to {args.out}.")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import", help="import another system's records (Synthea CSV or FHIR R4) as a records folder"
    )
    formats = parser.add_subparsers(dest="source_format", required=True, metavar="FORMAT")
    helps = {
        "synthea": "a Synthea CSV export folder (patients.csv, conditions.csv, encounters.csv, "
        "medications.csv if present)",
        "fhir": "a folder of FHIR R4 Bundle .json files (Patient, Condition, Encounter)",
    }
    defaults = ImportOptions()
    for name, help_text in helps.items():
        sub = formats.add_parser(name, help=help_text)
        sub.add_argument("directory", help="the folder to import")
        sub.add_argument("--out", required=True, help="the records folder to write")
        sub.add_argument("--practice-code", default=defaults.practice_code,
                         help="practice code for people without an organisation (default %(default)s)")
        sub.add_argument("--practice-name", default=defaults.practice_name)
        sub.add_argument("--avoid-numbers-in", metavar="RECORDS_DIR",
                         help="a records folder whose NHS numbers the imported people must not "
                         "reuse (e.g. the generated population loaded into the same store)")
        sub.set_defaults(handler=run_import)
