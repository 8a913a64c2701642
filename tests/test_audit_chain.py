"""The audit trail is hash-chained: `proactive-care audit verify` finds any changed, removed, added or
reordered row; concurrent writers never fork the chain; on PostgreSQL the application's role may only
insert and read audit rows and cannot switch off their guards."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.cli import main
from app.db import get_engine, session_scope
from app.services import audit
from app.services.access import CurrentUser
from app.services.permissions import Role
from app.store import AuditEvent
from conftest import POSTGRES_URL, _admin_engine, _drop_pg, _pg_url

WRITER = CurrentUser("chain-test", "Chain test", Role.ADMIN)


def _verify(url: str, capsys) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["audit", "verify", "--database", url])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _tamper(url: str, *statements: str) -> None:
    """What someone with the database owner's rights could do: lift the guards and rewrite rows."""
    engine = get_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        if postgres:
            connection.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


def _ids(url: str) -> list[int]:
    engine = get_engine(url)
    with session_scope(engine) as session:
        ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    engine.dispose()
    return ids


TAMPERING = {
    "a row's content changed": (["UPDATE audit_events SET username = 'someone else' WHERE id = {middle}"], "middle",
                                "its content no longer matches its hash"),
    "a row removed": (["DELETE FROM audit_events WHERE id = {middle}"], "after", "does not follow the row before it"),
    "a row added behind the application's back": (
        ["INSERT INTO audit_events (id, at, username, role, action, entity) "
         "VALUES ({middle_plus_half}, '2026-01-01 00:00:00', 'intruder', 'admin', 'view', 'patient')"],
        "added", "it has no hash"),
    "two rows swapped": (["UPDATE audit_events SET id = -1 WHERE id = {middle}",
                          "UPDATE audit_events SET id = {middle} WHERE id = {after}",
                          "UPDATE audit_events SET id = {after} WHERE id = -1"], "middle", "does not follow the row before it"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_verify_names_the_first_broken_row(loaded_url, users, capsys, name):
    engine = get_engine(loaded_url)
    with session_scope(engine, write=True) as session:
        for number in range(6):
            audit.record(session, users["admin"], "view", "patient", str(number))
    engine.dispose()
    status, said = _verify(loaded_url, capsys)
    assert status == 0 and "The audit trail is intact" in said, said
    ids = _ids(loaded_url)
    if name == "a row added behind the application's back":  # room for an id between two rows
        _tamper(loaded_url, f"UPDATE audit_events SET id = id + 1000 WHERE id > {ids[len(ids) // 2]}")
        ids = _ids(loaded_url)
        assert _verify(loaded_url, capsys)[0] == 0  # renumbering alone keeps the order and the chain
    places = {"middle": ids[len(ids) // 2], "after": ids[len(ids) // 2 + 1]}
    places["middle_plus_half"] = places["middle"] + 1
    statements, broken, words = TAMPERING[name]
    _tamper(loaded_url, *[statement.format(**places) for statement in statements])
    expected_row = places["middle_plus_half"] if broken == "added" else places[broken]
    status, said = _verify(loaded_url, capsys)
    assert status == 2, said
    assert said.count("\n") == 1 and "Traceback" not in said
    assert said.startswith(f"proactive-care audit: The audit trail has been tampered with at row {expected_row} ")
    assert words in said


def test_an_empty_trail_is_intact(store_url, capsys):
    status, said = _verify(store_url, capsys)
    assert status == 0 and "0 rows" in said


# --- concurrent writers ---------------------------------------------------------------------------

EVENTS_PER_WRITER = 8


def _append_events(url: str, name: str, start: threading.Barrier | None = None) -> None:
    engine = get_engine(url)
    if start is not None:
        start.wait()
    for number in range(EVENTS_PER_WRITER):
        with session_scope(engine, write=True) as session:
            audit.record(session, CurrentUser(name, name, Role.ADMIN), "view", "patient", str(number))
        with session_scope(engine) as session:  # a view in a read session, written as it closes
            audit.record(session, CurrentUser(name, name, Role.ADMIN), "view", "patient", f"read-{number}")
    engine.dispose()


def _process_writer(url: str, name: str) -> None:
    _append_events(url, name)


def test_concurrent_writers_never_fork_the_chain(loaded_url, capsys):
    before = len(_ids(loaded_url))
    threads_start = threading.Barrier(4)
    threads = [threading.Thread(target=_append_events, args=(loaded_url, f"thread{i}", threads_start)) for i in range(4)]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_process_writer, args=(loaded_url, f"process{i}")) for i in range(1)]
    for worker in [*processes, *threads]:
        worker.start()
    for worker in [*threads, *processes]:
        worker.join(timeout=300)
    assert all(p.exitcode == 0 for p in processes)
    assert len(_ids(loaded_url)) == before + 5 * EVENTS_PER_WRITER * 2
    status, said = _verify(loaded_url, capsys)
    assert status == 0, said
    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        previous = [row for row in session.scalars(select(AuditEvent.previous_hash))]
    engine.dispose()
    assert len(previous) == len(set(previous)), "two rows chained to the same previous row"


# --- upgrading a store whose trail predates the chain ---------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PROACTIVE_CARE_TEST_POSTGRES_URL is not set")
    name = f"pc_chain_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    yield _pg_url(name)
    _drop_pg(name)


def test_upgrade_chains_the_rows_already_written(empty_database, capsys):
    from app.migrations import upgrade

    upgrade(empty_database, "0003")  # the last revision before the chain
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        for number in range(5):
            connection.execute(text(
                "INSERT INTO audit_events (at, username, role, action, entity, entity_id, after) "
                "VALUES (:at, 'old', 'admin', 'view', 'patient', :id, :after)"),
                {"at": f"2025-0{number + 1}-01 10:00:00.123456", "id": str(number), "after": '{"k": [1, 2.5, "x"]}'})
    engine.dispose()
    upgrade(empty_database)
    status, said = _verify(empty_database, capsys)
    assert status == 0 and "5 rows" in said, said
    engine = get_engine(empty_database)
    with pytest.raises(DBAPIError, match="append-only"):  # the guard is back after the back-fill
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_events SET username = 'x'"))
    engine.dispose()


# --- PostgreSQL: the application's role -----------------------------------------------------------

@pytest.fixture
def app_role_url(loaded_url):
    """The loaded store, reached as a login role that is a member of proactive_care_app (as a
    deployment's app login is), not as the tables' owner."""
    if not loaded_url.startswith("postgresql"):
        pytest.skip("the application role is PostgreSQL's")
    login = f"pc_app_login_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE proactive_care_app"))
    yield make_url(loaded_url).set(username=login).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(loaded_url).database}" WITH (FORCE)'))
        connection.execute(text(f"DROP ROLE IF EXISTS {login}"))
    admin.dispose()


@pytest.mark.parametrize("loaded_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET username = 'someone else'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER USER",
    "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "DROP TABLE audit_events",
])
def test_app_role_cannot_rewrite_the_trail_or_lift_its_guards(app_role_url, statement):
    engine = get_engine(app_role_url)
    with pytest.raises(DBAPIError, match="permission denied|must be owner"):
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
    engine.dispose()


@pytest.mark.parametrize("loaded_url", ["postgres"], indirect=True)
def test_app_role_runs_the_application(app_role_url, tiny_inputs, users, capsys):
    from app.load import load
    from app.services import careplans, patients

    summary = load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], app_role_url, progress=False)
    engine = get_engine(app_role_url)
    with session_scope(engine, write=True) as session:
        person = patients.flagged_list(session, users["practice1"]).iloc[0]["nhs_number"]
        careplans.save_care_plan(session, users["practice1"], person, 0, status="draft", goals=["Stay well"])
    with session_scope(engine) as session:
        assert session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "care_plan_save"
    engine.dispose()
    status, said = _verify(app_role_url, capsys)
    assert summary.people_scored > 0 and status == 0, said
