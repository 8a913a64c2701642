"""Care planning in a real browser (fixtures in tests/browser/conftest.py), as an MDT clinician:

1. create an MDT meeting;
2. open a flagged person, record a holistic assessment;
3. agree a care plan with what matters, goals and a contingency plan (who to call, day and night),
   then add a follow-up;
4. download the plan as FHIR R4 (validated) and as the printable plan, which opens in the browser;
5. put the person on the meeting's agenda, open the agenda, print it (it opens too) and record an
   outcome;
6. export every care plan in the demo store with the command line: each is a valid FHIR R4 CarePlan
   naming its person by NHS number.
Screenshots of each step go to test-artifacts/care_*.png.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from .browser_support import ARTIFACTS, Journey

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def care_person(demo) -> dict:
    """A flagged person at mdt1's practices with no plan, not in the top 2% (the coverage journey's
    group), aged 65 or over so they have a frailty category."""
    from app.db import get_engine, session_scope
    from app.services.users import demo_users, get_user
    from app.store import CarePlan, Patient, Practice, Score, ScoreRun

    engine = get_engine(demo["url"])
    with session_scope(engine) as session:
        practices = session.execute(select(Practice.practice_code, Practice.pcn_code)).all()
        accounts = {u.username: u for u in demo_users([tuple(p) for p in practices])}
        mdt = get_user(session, "mdt1")
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        row = session.execute(
            select(Score.nhs_number, Patient.given_name, Patient.family_name, Patient.practice_code)
            .join(Patient, Patient.nhs_number == Score.nhs_number)
            .outerjoin(CarePlan, CarePlan.nhs_number == Score.nhs_number)
            .where(Score.run_id == run.id, Score.flagged, ~run.has_flag("top_2pct"), Score.efi_category.is_not(None),
                   CarePlan.nhs_number.is_(None), Patient.practice_code.in_(sorted(mdt.practice_codes)))
            .order_by(Score.probability.desc()).limit(1)
        ).one()
    engine.dispose()
    return {"nhs": row.nhs_number, "name": f"{row.given_name} {row.family_name}", "practice": row.practice_code,
            "mdt": accounts["mdt1"]}


def test_assessment_plan_follow_up_exports_and_the_mdt_agenda(browser, app_url, care_person, demo):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    journey = Journey(context.new_page(), app_url, prefix="care")
    try:
        walk(journey, care_person, context)
    except Exception:
        journey.shot("failed_here")
        raise
    finally:
        context.close()
    export_the_demo_store(demo)


def label(journey: Journey, text: str):
    return journey.page.get_by_label(text, exact=True).first


def pick(journey: Journey, text: str, option: str) -> None:
    """A selectbox found by its exact label."""
    box = label(journey, text)
    box.click()
    box.fill(option)
    journey.page.get_by_role("option", name=option, exact=True).first.click()
    journey.settle()


def download(journey: Journey, button: str) -> Path:
    journey.settle()
    with journey.page.expect_download(timeout=60_000) as caught:
        journey.page.get_by_role("button", name=button).click()
    path = ARTIFACTS / f"care_{caught.value.suggested_filename}"
    caught.value.save_as(path)
    return path


def open_file(journey: Journey, context, path: Path, heading: str, name: str):
    """Open a downloaded page in a new tab of the browser, check its heading, keep a screenshot."""
    view = context.new_page()
    view.goto(path.resolve().as_uri())
    view.get_by_role("heading", name=heading).wait_for()
    journey.step += 1
    view.screenshot(path=str(ARTIFACTS / f"{journey.prefix}_{journey.step:02d}_{name}.png"), full_page=True)
    return view


def walk(journey: Journey, person: dict, context) -> None:
    page = journey.page
    journey.sign_in(person["mdt"])
    page.get_by_role("heading", name="MDT meetings").wait_for()
    page.get_by_text("Create a meeting").click()
    pick(journey, "Practice", person["practice"])
    page.get_by_role("button", name="Create meeting").click()
    page.get_by_text("Meeting created for").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("meeting_created")

    page.get_by_role("link", name="Patient").click()
    journey.settle()
    label(journey, "NHS number").fill(person["nhs"])
    label(journey, "NHS number").press("Enter")
    page.get_by_text("A score is not a diagnosis").first.wait_for(timeout=30_000)
    page.get_by_role("heading", name="History").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("patient_page")

    # 2. the holistic assessment (its form is open while there is none)
    label(journey, "Done by").fill("Jo Hill")
    pick(journey, "Falls", "Needs action")
    label(journey, "Note on falls").fill("Two falls since the summer; frightened of going out")
    pick(journey, "Medicines review", "Needs action")
    label(journey, "Note on medicines review").fill("Eleven medicines: review the sedatives")
    label(journey, "What matters to the person").fill("Staying in my own home")
    page.get_by_role("button", name="Save assessment").click()
    page.get_by_text("Jo Hill (GP), recorded by").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("assessment_recorded")

    # 3. the plan with its contingency plan, then a follow-up
    pick(journey, "Status", "Agreed")
    label(journey, "What matters to the person (in their words)").fill("Staying in my own home and gardening")
    label(journey, "Goals (one per line)").fill("No more falls\nWalk to the shop twice a week")
    label(journey, "In the day, call").fill("Community nursing team")
    label(journey, "Day-time phone number").fill("0116 225 6000")
    label(journey, "At night and at weekends, call").fill("NHS 111")
    label(journey, "Night-time phone number").fill("111")
    label(journey, "What to look out for and what to do").fill("Dizzy or a fall: call the nursing team the same day.")
    page.get_by_text("Consent to share this plan").click()
    page.get_by_role("button", name="Save care plan").click()
    page.get_by_role("heading", name="Care plan: Agreed").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("plan_agreed_with_contingency")
    page.get_by_text("Add an action or a follow-up").click()
    page.get_by_text("Follow-up", exact=True).click()
    label(journey, "What").fill("Phone call to check on falls")
    label(journey, "Who will do it").fill("Sam Patel, care navigator")
    page.get_by_role("button", name="Add to the plan").click()
    page.get_by_role("listitem").filter(has_text="Phone call to check on falls").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("follow_up_added")

    # 4. both downloads: FHIR for another system, the printable plan for the person
    from app import careplan_fhir

    bundle = json.loads(download(journey, "Download for another system (FHIR R4)").read_text())
    careplan_fhir.validate(bundle)
    plan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert plan["subject"]["identifier"] == {"system": careplan_fhir.NHS_NUMBER_SYSTEM, "value": person["nhs"]}
    assert any(a["detail"]["code"]["text"] == "Follow-up" for a in plan["activity"])
    printed = download(journey, "Download the plan for the person (to print)")
    view = open_file(journey, context, printed, "My care and support plan", "printable_plan")
    assert view.get_by_text("NHS 111").first.is_visible() and view.get_by_text("Phone call to check on falls").is_visible()
    view.close()

    # 5. the MDT agenda
    page.get_by_text("Put on an MDT meeting's agenda").click()
    page.get_by_role("button", name="Add to the agenda").click()
    page.get_by_text("Added 1 person to the agenda.").wait_for(timeout=30_000)
    journey.settle()
    page.get_by_role("link", name="MDT meetings").click()
    page.get_by_role("button", name="Print the agenda").wait_for(timeout=30_000)
    journey.settle()
    page.get_by_text(f"1. {person['name']}: not discussed yet").click()
    page.get_by_text("Staying in my own home and gardening").first.wait_for()
    journey.settle()
    journey.shot("mdt_agenda")
    agenda = download(journey, "Print the agenda")
    view = open_file(journey, context, agenda, "MDT meeting agenda", "printable_agenda")
    assert view.get_by_text("needs action on Medicines review, Falls").is_visible()
    view.close()
    label(journey, "Lead professional's name (if assigned)").fill("Dr Asha Rao")
    page.get_by_role("button", name="Record outcome").click()
    page.get_by_text(f"1. {person['name']}: Lead professional assigned").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("outcome_recorded")
    journey.sign_out()


def export_the_demo_store(demo) -> None:
    """Every care plan in the demo store (this journey's and any other journey's) as FHIR R4."""
    from app import careplan_fhir
    from app.db import get_engine, session_scope
    from app.store import CarePlan

    out = ARTIFACTS / "care_fhir_export"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "app.cli", "careplans", "export", "--format", "fhir", "--out", str(out)],
                   check=True, env=demo["env"], cwd=Path(__file__).resolve().parents[2])
    engine = get_engine(demo["url"])
    with session_scope(engine) as session:
        in_store = set(session.scalars(select(CarePlan.nhs_number)))
    engine.dispose()
    named = set()
    for path in out.glob("care_plan_*.json"):
        bundle = json.loads(path.read_text())
        careplan_fhir.validate(bundle)
        plan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
        assert plan["subject"]["identifier"]["system"] == careplan_fhir.NHS_NUMBER_SYSTEM
        named.add(plan["subject"]["identifier"]["value"])
    assert in_store and named >= in_store
