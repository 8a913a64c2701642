"""The permission table: one row per permission, every role's home page open to it, refusals worded
from the table, and the navigation read from it."""

from __future__ import annotations

import pytest

from app.navigation import PAGES, pages_for
from app.services.access import CurrentUser
from app.services.permissions import GRANTS, ROLES, Permission, Role, allowed, refusal


def user(role: Role) -> CurrentUser:
    return CurrentUser(f"a-{role}", "Someone", role, practice_codes=frozenset({"P001"}))


def test_every_permission_has_a_row_and_every_role_a_home_it_may_open():
    assert set(GRANTS) == set(Permission)
    assert set(ROLES) == set(Role)
    for role, info in ROLES.items():
        assert info.home in PAGES and allowed(role, PAGES[info.home].permission)


@pytest.mark.parametrize("role", list(Role))
def test_navigation_is_the_pages_the_table_allows_home_first(role):
    keys = pages_for(user(role))
    assert keys[0] == ROLES[role].home
    assert set(keys) == {key for key, page in PAGES.items() if allowed(role, page.permission)}


def test_commissioners_see_no_person_level_page_and_admins_alone_manage_users():
    assert pages_for(user(Role.COMMISSIONER)) == ["coverage", "model_card"]
    assert [r for r in Role if allowed(r, Permission.MANAGE_USERS)] == [Role.ADMIN]
    assert not any(allowed(Role.COMMISSIONER, p) for p in
                   (Permission.SEE_PEOPLE, Permission.PLAN_CARE, Permission.RUN_MEETINGS, Permission.SEE_CASELOADS))


def test_refusal_names_who_can():
    assert refusal(Role.COMMISSIONER, Permission.SEE_PEOPLE) == (
        "Commissioner users cannot see identifiable records; only GP practice staff, Care navigator, "
        "MDT clinician / social worker can.")
