"""The app's pages, each listed once with the permission a user needs to open it; a user's
navigation is the pages their role may open, their home page first. Plain Python (no Streamlit), so
tests read the same table the app does."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.access import CurrentUser
from app.services.permissions import ROLES, Permission


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str  # a Material icon name
    url_path: str
    permission: Permission


PAGES: dict[str, PageSpec] = {
    "list": PageSpec("app/pages/high_risk_list.py", "High-risk list", "list", "list", Permission.SEE_PEOPLE),
    "patient": PageSpec("app/pages/patient.py", "Patient", "person", "patient", Permission.SEE_PEOPLE),
    "meetings": PageSpec("app/pages/meetings.py", "MDT meetings", "groups", "meetings", Permission.RUN_MEETINGS),
    "caseload": PageSpec("app/pages/caseload.py", "Caseloads", "assignment_ind", "caseload", Permission.SEE_CASELOADS),
    "coverage": PageSpec("app/pages/coverage.py", "Care-plan coverage", "monitoring", "coverage",
                         Permission.SEE_COVERAGE),
    "model_card": PageSpec("app/pages/model_card.py", "About the model", "description", "model", Permission.SEE_MODEL),
    "audit": PageSpec("app/pages/audit.py", "Audit trail", "policy", "audit", Permission.READ_AUDIT),
}


def pages_for(user: CurrentUser) -> list[str]:
    """The page keys a user may open, their home page first."""
    home = ROLES[user.role].home
    permitted = [key for key, page in PAGES.items() if user.can(page.permission)]
    return sorted(permitted, key=lambda key: key != home)
