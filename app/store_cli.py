"""`proactive-care db upgrade|add-user`, `load` and `audit verify`: thin shells over app.migrations,
app.load and app.services."""

from __future__ import annotations

import argparse
import sys


def _upgrade(args: argparse.Namespace) -> int:
    from app.load import upgrade_database

    url = upgrade_database(args.database)
    print(f"Database is at the latest schema: {_safe(url)}")
    return 0


def _load(args: argparse.Namespace) -> int:
    from app.load import load

    summary = load(args.records, args.scores, args.model, args.database, add_to_current=args.add_to_current,
                   progress=True)
    print(
        f"{'Added to' if args.add_to_current else 'Loaded'} score run {summary.run_id}: "
        f"{summary.people_scored:,} people scored "
        f"({summary.flagged:,} flagged), {summary.patients:,} patients, {summary.conditions:,} conditions, "
        f"{summary.encounter_summaries:,} encounter summaries in {summary.seconds:.1f}s "
        f"(model {summary.model_sha256[:12]}…)."
    )
    if summary.demo_users_created:
        print(f"Demo users created (password = username + '-demo-pass'): {', '.join(summary.demo_users_created)}")
    return 0


def _add_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from app.db import get_engine, session_scope
    from app.services.access import CurrentUser
    from app.services.permissions import Role
    from app.services.users import create_user

    password = os.environ.get("PROACTIVE_CARE_NEW_USER_PASSWORD") or getpass.getpass(
        f"Password for {args.username}: ")
    operator = CurrentUser(username="system:cli", display_name="Command line", role=Role.ADMIN)
    engine = get_engine(args.database)
    try:
        with session_scope(engine, write=True) as session:
            create_user(
                session, operator, username=args.username, display_name=args.display_name or args.username,
                role=args.role, password=password, practice_codes=_codes(args.practices),
                pcn_codes=_codes(args.pcns), caseload_capacity=args.capacity,
            )
    finally:
        engine.dispose()
    print(f"Added {args.role} user {args.username}.")
    return 0


def _verify_audit(args: argparse.Namespace) -> int:
    from app.db import get_engine, session_scope
    from app.services.audit import verify_chain
    from features.errors import UserInputError

    engine = get_engine(args.database)
    try:
        with session_scope(engine) as session:
            check = verify_chain(session)
    finally:
        engine.dispose()
    if not check.intact:
        raise UserInputError(f"The audit trail has been tampered with at {check.problem}.")
    print(f"The audit trail is intact: {check.rows:,} rows, each chained to the one before; the last hash is "
          f"{check.last_hash} (note it elsewhere: a later check that ends on another hash with fewer rows "
          "means rows were removed from the end).")
    return 0


def _codes(text: str | None) -> list[str]:
    return [code.strip() for code in (text or "").split(",") if code.strip()]


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="manage the database schema")
    db_verbs = db.add_subparsers(dest="db_verb", required=True, metavar="ACTION")
    upgrade = db_verbs.add_parser("upgrade", help="create or migrate the tables to the latest schema")
    upgrade.add_argument("--database", help="SQLAlchemy URL (default: PROACTIVE_CARE_MIGRATION_DATABASE_URL, "
                         "else PROACTIVE_CARE_DATABASE_URL, else data/proactive_care.db)")
    upgrade.set_defaults(handler=_upgrade)
    add_user = db_verbs.add_parser(
        "add-user", help="add a user (password from PROACTIVE_CARE_NEW_USER_PASSWORD or a prompt)"
    )
    add_user.add_argument("--username", required=True)
    add_user.add_argument("--role", required=True, choices=["practice", "navigator", "mdt", "commissioner", "admin"])
    add_user.add_argument("--display-name")
    add_user.add_argument("--practices", help="comma-separated practice codes (practice, navigator, mdt)")
    add_user.add_argument("--pcns", help="comma-separated PCN codes (commissioner; none = whole area)")
    add_user.add_argument("--capacity", type=int, help="caseload capacity (navigator)")
    add_user.add_argument("--database", help="SQLAlchemy URL (default: PROACTIVE_CARE_DATABASE_URL)")
    add_user.set_defaults(handler=_add_user)

    audit = subparsers.add_parser("audit", help="check the audit trail")
    audit_verbs = audit.add_subparsers(dest="audit_verb", required=True, metavar="ACTION")
    verify = audit_verbs.add_parser(
        "verify", help="recompute the audit trail's hash chain: exit 0 if intact, 2 naming the first broken row")
    verify.add_argument("--database", help="SQLAlchemy URL (default: PROACTIVE_CARE_DATABASE_URL)")
    verify.set_defaults(handler=_verify_audit)

    load = subparsers.add_parser(
        "load", help="validate records and a score file, then load them as the current score run"
    )
    load.add_argument("--records", required=True, help="records folder (Parquet or CSV tables)")
    load.add_argument("--scores", required=True, help="score file written by `proactive-care score`")
    load.add_argument("--model", help="model folder; its sha256 is registered so its scores may be loaded")
    load.add_argument("--database", help="SQLAlchemy URL (default: PROACTIVE_CARE_DATABASE_URL)")
    load.add_argument(
        "--add-to-current", action="store_true",
        help="add these records' practices (e.g. an import) to the current score run beside the ones "
             "already there, instead of replacing it; refused if a practice code or NHS number is already in it",
    )
    load.set_defaults(handler=_load)
