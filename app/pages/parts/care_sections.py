"""The patient page's proactive-care sections (Streamlit): the programme decision (clinical
judgement), the holistic assessment, sharing and printing the plan, and putting the person on an
MDT agenda. Each reads and writes through the services; values are shown through ``presentation``."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from app import presentation, ui
from app.text_safety import markdown_text
from app.db import session_scope
from app.services import assessments, cohort, documents, meetings
from app.services.careplans import StaleEditError
from app.services.permissions import Permission
from app.settings import review_interval_days, today as app_today


def _decision_words(decision: dict, labels: dict) -> str:
    reason = cohort.reason_label(decision["reason"])
    if decision["decision"] == "include":
        text = f"Added to the programme by clinical judgement: {reason}."
    else:
        flags = ", ".join(labels.get(f, f) for f in decision["flags"])
        text = f"Excluded from the programme by clinical judgement ({flags}): {reason}."
    if decision["note"]:
        text += f" Note: {markdown_text(decision['note'])}"
    return text + f" Review by {presentation.day(decision['review_on'])}."


def judgement_section(user, record: dict, labels: dict, names: dict) -> None:
    nhs, decision = record["nhs_number"], record["decision"]
    held = (record["score"] or {}).get("flags") or []
    if decision["in_force"]:
        (st.warning if decision["review_due"] else st.info)(
            _decision_words(decision, labels) + (" This review is overdue." if decision["review_due"] else "")
            + f" Recorded by {markdown_text(presentation.user_name(names, decision['updated_by']))} on {presentation.day(decision['decided_on'])}.")
    title = "Clinical judgement: add to or exclude from the programme"
    with st.expander(title, expanded=False):
        if not user.can(Permission.JUDGE_COHORT):
            st.caption("GP practice staff and MDT clinicians record these decisions.")
            return
        version = decision["version"]
        if decision["in_force"]:
            with st.form(f"judgement_end_{nhs}_{version}"):
                note = st.text_input("Why the decision no longer applies (optional)", key=f"judgement_end_note_{nhs}")
                if st.form_submit_button("End this decision"):
                    _decide(nhs, version, "ended", note=note)
            return
        excluding = bool(held)
        reasons = cohort.EXCLUDE_REASONS if excluding else cohort.INCLUDE_REASONS
        with st.form(f"judgement_{nhs}_{version}"):
            if excluding:
                st.caption("This person is flagged. Exclude them if proactive care is not right for them now; they "
                           "stay on the list, marked as excluded, and leave the coverage figures of those flags.")
                flags = st.multiselect("Exclude from", held, default=held, format_func=labels.get, key=f"judgement_flags_{nhs}")
            else:
                st.caption("This person is not flagged. Add them if the team judges they need proactive care; they "
                           "join the list and are counted in coverage as 'Added by clinical judgement'.")
                flags = None
            reason = st.selectbox("Reason", list(reasons), format_func=reasons.get, key=f"judgement_reason_{nhs}")
            note = st.text_area("Note", key=f"judgement_note_{nhs}")
            review = st.date_input("Review this decision by", value=app_today() + timedelta(days=review_interval_days()),
                                   key=f"judgement_review_{nhs}", format="DD/MM/YYYY")
            if st.form_submit_button("Exclude from the programme" if excluding else "Add to the programme"):
                _decide(nhs, version, "exclude" if excluding else "include", reason=reason, note=note,
                        review_on=review, flags=flags)
        if record["decision_history"]:
            st.dataframe(pd.DataFrame([{
                "When": presentation.moment(h["changed_at"]), "By": presentation.user_name(names, h["changed_by"]),
                "Decision": cohort.DECISION_LABELS[h["decision"]], "Reason": cohort.reason_label(h["reason"]),
                "Note": h["note"] or "", "Review by": presentation.day(h["review_on"], missing=""),
            } for h in reversed(record["decision_history"])]), hide_index=True, width="stretch")


def _decide(nhs: str, version: int, decision: str, **fields) -> None:
    try:
        with ui.show_errors():
            ui.write(cohort.decide, nhs, version, decision, **fields)
            st.toast("Programme decision saved.")
            st.rerun()
    except StaleEditError as error:
        st.error(str(error))
        st.button("Reload", key=f"judgement_reload_{nhs}")


def assessment_section(record: dict, names: dict) -> None:
    st.subheader("Holistic assessment")
    found = record["assessments"]
    if found:
        latest = found[0]
        st.caption(f"Latest: {presentation.day(latest['assessed_on'])} by {markdown_text(latest['assessor_name'])} "
                   f"({latest['assessor_role']}), recorded by {markdown_text(presentation.user_name(names, latest['recorded_by']))}.")
        if latest["what_matters"]:
            st.markdown("**What matters to the person:** " + markdown_text(latest["what_matters"]))
        st.dataframe(pd.DataFrame([{
            "Area": domain.label, "Item": item.label,
            "Finding": assessments.FINDINGS[(latest["findings"].get(item.name) or {}).get("finding", "not_assessed")],
            "Note": (latest["findings"].get(item.name) or {}).get("note") or "",
        } for domain in assessments.DOMAINS for item in domain.items]), hide_index=True, width="stretch")
        if len(found) > 1:
            st.caption("Earlier: " + "; ".join(
                f"{presentation.day(a['assessed_on'])} by {markdown_text(a['assessor_name'])}"
                + (f" (needs action: {', '.join(assessments.needing_action(a))})" if assessments.needing_action(a) else "")
                for a in found[1:]))
    else:
        st.caption("No holistic assessment recorded yet.")
    nhs = record["nhs_number"]
    with st.expander("Record an assessment", expanded=not found):
        with st.form(f"assessment_{nhs}_{len(found)}"):
            when, who, role = st.columns(3)
            assessed_on = when.date_input("Date of the assessment", value=app_today(), key=f"assessment_date_{nhs}",
                                          format="DD/MM/YYYY")
            assessor = who.text_input("Done by", key=f"assessment_by_{nhs}")
            assessor_role = role.selectbox("Their role", assessments.ASSESSOR_ROLES, key=f"assessment_role_{nhs}")
            findings = {}
            for domain in assessments.DOMAINS:
                st.markdown(f"**{domain.label}**")
                for item in domain.items:
                    finding_col, note_col = st.columns([1, 2])
                    finding = finding_col.selectbox(item.label, list(assessments.FINDINGS), index=3,
                                                    format_func=assessments.FINDINGS.get,
                                                    key=f"assessment_{item.name}_{nhs}", help=item.prompt)
                    note = note_col.text_input(f"Note on {item.label.lower()}", key=f"assessment_{item.name}_note_{nhs}")
                    findings[item.name] = {"finding": finding, "note": note}
            what_matters = st.text_area("What matters to the person", key=f"assessment_what_matters_{nhs}")
            if st.form_submit_button("Save assessment"):
                with ui.show_errors():
                    ui.write(assessments.record_assessment, nhs, assessed_on=assessed_on, assessor_name=assessor,
                             assessor_role=assessor_role, findings=findings, what_matters=what_matters)
                    st.toast("Assessment saved.")
                    st.rerun()


def deferred_document(service, *args):
    """A download's bytes, built (and audited) only when the button is clicked. Streamlit runs the
    callable on another thread, outside the page's session, so the user and engine are taken now."""
    user, engine = ui.require_user(), ui.engine()

    def build() -> bytes:
        with session_scope(engine) as session:
            return service(session, user, *args).content

    return build


def share_section(record: dict) -> None:
    st.subheader("Share and print the plan")
    nhs = record["nhs_number"]
    if not record["care_plan"]["version"]:
        st.caption("Save a care plan first; then it can be printed for the person or sent to another system.")
        return
    st.caption("Each download is recorded in the audit trail.")
    left, right = st.columns(2)
    left.download_button(
        "Download the plan for the person (to print)", deferred_document(documents.care_plan_document, nhs, "html"),
        f"care_plan_{nhs}.html", "text/html", key=f"share_html_{nhs}", on_click="ignore")
    right.download_button(
        "Download for another system (FHIR R4)", deferred_document(documents.care_plan_document, nhs, "fhir"),
        f"care_plan_{nhs}.json", "application/fhir+json", key=f"share_fhir_{nhs}", on_click="ignore")


def meeting_section(record: dict) -> None:
    nhs = record["nhs_number"]
    upcoming = pd.DataFrame()
    with ui.show_errors():
        upcoming = ui.read(meetings.list_meetings, from_date=app_today())
    upcoming = upcoming[upcoming["practice_code"] == record["practice_code"]] if not upcoming.empty else upcoming
    with st.expander("Put on an MDT meeting's agenda", expanded=False):
        if upcoming.empty:
            st.caption("No upcoming MDT meeting at this person's practice: create one on the MDT meetings page.")
            return
        labels = {row.meeting_id: f"{presentation.day(row.meeting_date)} ({presentation.count(row.people)} on the agenda)"
                  for row in upcoming.itertuples()}
        meeting_id = st.selectbox("Meeting", list(labels), format_func=labels.get, key=f"patient_meeting_{nhs}")
        if st.button("Add to the agenda", key=f"patient_agenda_add_{nhs}"):
            with ui.show_errors():
                added = ui.write(meetings.add_to_agenda, meeting_id, [nhs])
                (st.warning if added.refused else st.success)(markdown_text(added.sentence()))
