"""Users: argon2 password hashes, sign-in, demo users and the production safety check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app import settings
from app.db import require_write_session
from app.services import audit
from app.services.access import CurrentUser, require
from app.services.permissions import ROLES, Permission, Role, allowed, roles_with
from app.store import User

_hasher = PasswordHasher()
# Demo passwords are published (username + suffix), so a slow hash protects nothing; a cheap one
# keeps a first load from spending seconds on them. Any password a person sets uses ``_hasher``.
_demo_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
# Verified against when the username is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not a real password")

DEMO_PASSWORD_SUFFIX = "-demo-pass"
DEFAULT_CASELOAD_CAPACITY = 50


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def current_user_from(row: User) -> CurrentUser:
    return CurrentUser(
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        practice_codes=frozenset(row.practice_codes or ()),
        pcn_codes=frozenset(row.pcn_codes or ()),
        caseload_capacity=row.caseload_capacity,
    )


def authenticate(session: Session, username: str, password: str) -> CurrentUser | None:
    """The user if the password matches an active account, else None. Attempts are audited."""
    row = session.get(User, (username or "").strip())
    if row is None or not row.active:
        try:
            _hasher.verify(_DUMMY_HASH, password or "")
        except VerificationError:
            pass
        return None
    try:
        _hasher.verify(row.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        audit.record(session, current_user_from(row), "sign_in_failed", "user", row.username)
        return None
    user = current_user_from(row)
    audit.record(session, user, "sign_in", "user", row.username)
    return user


def get_user(session: Session, username: str) -> CurrentUser | None:
    row = session.get(User, username)
    return current_user_from(row) if row is not None and row.active else None


def _validate(username: str, role: str, practice_codes: Sequence[str], password: str) -> Role:
    if not username or not username.replace("_", "").replace(".", "").isalnum():
        raise UserInputError(f"The username {username!r} must be letters, digits, dots or underscores.")
    if len(password) < 10:
        raise UserInputError(f"The password for {username} must be at least 10 characters.")
    try:
        parsed = Role(role)
    except ValueError:
        raise UserInputError(
            f"The role {role!r} is not one of {', '.join(r.value for r in Role)}."
        ) from None
    if ROLES[parsed].needs_practices and not practice_codes:
        raise UserInputError(f"A {parsed.value} user needs at least one practice code.")
    return parsed


def _insert_user(session, *, username, display_name, role, password, practice_codes=(),
                 pcn_codes=(), caseload_capacity=None, is_demo=False) -> User:
    parsed = _validate(username, role, practice_codes, password)
    if session.get(User, username) is not None:
        raise UserInputError(f"A user called {username} already exists.")
    row = User(
        username=username,
        display_name=display_name or username,
        role=parsed.value,
        password_hash=(_demo_hasher if is_demo else _hasher).hash(password),
        practice_codes=sorted(practice_codes),
        pcn_codes=sorted(pcn_codes),
        caseload_capacity=(
            caseload_capacity if caseload_capacity is not None
            else DEFAULT_CASELOAD_CAPACITY if allowed(parsed, Permission.HOLD_CASELOAD) else None
        ),
        is_demo=is_demo,
    )
    session.add(row)
    session.flush()
    return row


def _public(row: User) -> dict:
    return {
        "username": row.username, "display_name": row.display_name, "role": row.role,
        "practice_codes": list(row.practice_codes or []), "pcn_codes": list(row.pcn_codes or []),
        "caseload_capacity": row.caseload_capacity, "active": row.active, "is_demo": row.is_demo,
    }


def create_user(session: Session, admin: CurrentUser, **fields) -> dict:
    """Admins add users (fields as ``_insert_user``); the password never reaches the audit trail."""
    require_write_session(session)
    require(session, admin, Permission.MANAGE_USERS)
    row = _insert_user(session, **fields)
    after = _public(row)
    audit.record(session, admin, "user_create", "user", row.username, after=after)
    return after


def update_user(session: Session, admin: CurrentUser, username: str, **changes) -> dict:
    """Change display_name, role, practice_codes, pcn_codes, caseload_capacity, active or password."""
    require_write_session(session)
    require(session, admin, Permission.MANAGE_USERS)
    row = session.get(User, username)
    if row is None:
        raise UserInputError(f"There is no user called {username}.")
    before = _public(row)
    allowed = {"display_name", "role", "practice_codes", "pcn_codes", "caseload_capacity", "active", "password"}
    unknown = set(changes) - allowed
    if unknown:
        raise UserInputError(f"Users have no field(s) {', '.join(sorted(unknown))}.")
    password = changes.pop("password", None)
    if "role" in changes:
        changes["role"] = Role(changes["role"]).value
    for name, value in changes.items():
        setattr(row, name, sorted(value) if name.endswith("_codes") else value)
    if password is not None:
        _validate(username, row.role, row.practice_codes or ["-"], password)
        row.password_hash = hash_password(password)
        row.is_demo = False  # a changed password is no longer the documented one
    session.flush()
    after = _public(row)
    audit.record(session, admin, "user_update", "user", username, before=before, after=after,
                 detail="password changed" if password is not None else None)
    return after


def list_users(session: Session, admin: CurrentUser) -> list[dict]:
    require(session, admin, Permission.MANAGE_USERS)
    return [_public(row) for row in session.scalars(select(User).order_by(User.role, User.username))]


def navigators(session: Session, practice_codes: Sequence[str] | None = None) -> list[CurrentUser]:
    """Active navigators (optionally those sharing one of the given practices), for reassignment."""
    rows = session.scalars(
        select(User).where(User.role.in_(roles_with(Permission.HOLD_CASELOAD)), User.active).order_by(User.username)
    )
    found = [current_user_from(r) for r in rows]
    if practice_codes is not None:
        wanted = set(practice_codes)
        found = [u for u in found if u.practice_codes & wanted]
    return found


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    role: Role
    practice_codes: tuple[str, ...] = ()
    pcn_codes: tuple[str, ...] = ()

    @property
    def password(self) -> str:
        return f"{self.username}{DEMO_PASSWORD_SUFFIX}"


def demo_users(practices: Sequence[tuple[str, str]]) -> list[DemoUser]:
    """The documented demo accounts for ``practices`` = [(practice_code, pcn_code), ...].

    One practice user per two practices (sorted by code), a navigator, an MDT clinician and a
    PCN commissioner for the first two practices' area, an area commissioner and an admin.
    Each password is the username followed by ``-demo-pass``.
    """
    ordered = sorted(practices)
    codes = [code for code, _ in ordered]
    users = [
        DemoUser(f"practice{i // 2 + 1}", f"Practice team {i // 2 + 1} ({', '.join(codes[i:i + 2])})",
                 Role.PRACTICE, tuple(codes[i:i + 2]))
        for i in range(0, len(codes), 2)
    ]
    first_pair = tuple(codes[:2])
    first_pcn = ordered[0][1] if ordered else ""
    users += [
        DemoUser("navigator1", "Care navigator (Sam Patel)", Role.NAVIGATOR, first_pair),
        DemoUser("mdt1", "MDT social worker (Alex Morgan)", Role.MDT, first_pair),
        DemoUser("commissioner", "Commissioner (whole area)", Role.COMMISSIONER),
        DemoUser("commissioner_pcn1", f"Commissioner ({first_pcn})", Role.COMMISSIONER, (), (first_pcn,)),
        DemoUser("admin", "Administrator", Role.ADMIN),
    ]
    return users


def seed_demo_users(session: Session, practices: Sequence[tuple[str, str]]) -> list[DemoUser]:
    """Add the demo accounts that do not exist yet (only in demo mode)."""
    if not settings.demo_mode():
        raise UserInputError("Demo users are only created in demo mode (PROACTIVE_CARE_MODE=demo).")
    created = []
    for demo in demo_users(practices):
        if session.get(User, demo.username) is None:
            _insert_user(
                session, username=demo.username, display_name=demo.display_name, role=demo.role.value,
                password=demo.password, practice_codes=demo.practice_codes, pcn_codes=demo.pcn_codes,
                is_demo=True,
            )
            created.append(demo)
    return created


class UnsafeToStart(RuntimeError):
    """Production mode with demo accounts (documented passwords) still present."""


def assert_safe_to_start(session: Session) -> None:
    if settings.demo_mode():
        return
    count = session.scalar(select(func.count()).select_from(User).where(User.is_demo, User.active))
    if count:
        raise UnsafeToStart(
            f"Refusing to start in production mode: {count} demo user(s) with documented passwords "
            "exist; deactivate them or change their passwords first."
        )
