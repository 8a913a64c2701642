"""`proactive-care careplans export`: every care plan in the store as FHIR R4 Bundles or printable
pages, one file per person (the store from PROACTIVE_CARE_DATABASE_URL or --database)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from app.db import get_engine, session_scope
    from app.services import documents
    from app.services.access import system_actor
    from app.services.users import get_user
    from features.errors import UserInputError

    engine = get_engine(args.database)
    try:
        with session_scope(engine) as session:
            if args.user:
                actor = get_user(session, args.user)
                if actor is None:
                    raise UserInputError(f"There is no active user {args.user!r} in the store.")
            else:
                actor = system_actor(session, "careplan-export")
            written = documents.export_plans(session, actor, Path(args.out), args.format,
                                             practice_codes=args.practice, progress=True)
    finally:
        engine.dispose()
    print(f"Exported {len(written):,} care plans as {args.format} to {args.out} (each export is in the audit trail).")
    return 0


def register(subparsers) -> None:
    careplans = subparsers.add_parser("careplans", help="care plans: export them to share or print")
    verbs = careplans.add_subparsers(dest="careplans_verb", required=True, metavar="ACTION")
    export = verbs.add_parser("export", help="write each care plan as a FHIR R4 Bundle or a printable page")
    export.add_argument("--format", required=True, choices=["fhir", "html"],
                        help="fhir: a FHIR R4 Bundle (JSON) per person; html: the plan written for the person")
    export.add_argument("--out", required=True, help="folder to write the files to (created if missing)")
    export.add_argument("--practice", action="append",
                        help="only this practice's plans (repeat for several; default: every practice)")
    export.add_argument("--user", help="export as this user, within their scope (default: a system actor "
                                       "for the whole store, audited as system:careplan-export)")
    export.add_argument("--database", help="SQLAlchemy URL (default: PROACTIVE_CARE_DATABASE_URL)")
    export.set_defaults(handler=_export)
