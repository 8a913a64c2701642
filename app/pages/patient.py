"""Patient page: score and reasons, conditions, hospital use, lead professional, care plan, history.

The person comes from the ``nhs`` query parameter. Both forms remember the version they were drawn
from; saving over a newer version shows what changed with buttons to reload or merge.
"""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from app import ui
from app.services import careplans, patients
from app.services.careplans import (
    CLOSE_REASONS,
    LEAD_PROFESSIONAL_ROLES,
    SAVED_STATUSES,
    StaleEditError,
)
from app.settings import review_interval_days
from app.text_safety import markdown_text

USE_LABELS = {
    "emergency_admission": "Emergency admissions", "elective_admission": "Planned admissions",
    "ae_attendance": "A&E attendances", "outpatient": "Outpatient appointments",
    "gp_consultation": "GP consultations",
}

user = ui.person_level_page("Patient")

nhs = ui.query_param("nhs")
if nhs is None:
    st.info("No person chosen yet: open someone from the High-risk list or type an NHS number.")
    typed = st.text_input("NHS number", key="patient_nhs")
    if typed:
        ui.open_patient(typed.replace(" ", ""))
    st.stop()

record = None
with ui.show_errors():
    record = ui.read(patients.patient_record, nhs)
if record is None:
    st.stop()
nhs = record["nhs_number"]

# --- who -------------------------------------------------------------------------------------
st.subheader(markdown_text(record["name"]))
facts = [f"NHS number {nhs[:3]} {nhs[3:6]} {nhs[6:]}", f"born {record['date_of_birth']:%d %b %Y} (age {record['age']})",
         "female" if record["sex"] == "F" else "male", markdown_text(record['practice_name'] or record['practice_code'])]
if record["care_home"]:
    facts.append("lives in a care home")
if record["date_of_death"]:
    facts.append(f"died {record['date_of_death']:%d %b %Y}")
st.caption(" · ".join(facts))

# --- score and reasons -----------------------------------------------------------------------
score = record["score"]
left, right = st.columns([1, 2])
with left:
    if score is None:
        st.info("No score for this person in the current run (not registered on the index date).")
    else:
        st.metric("Emergency admission risk", f"{score['probability']:.0%}",
                  help="The estimated chance of at least one emergency admission in the next 12 months.")
        st.caption(f"Higher than {score['percentile']:.0f}% of the population"
                   + (f" and {score['practice_percentile']:.0f}% of the practice" if score["practice_percentile"] is not None else "")
                   + ".")
        st.markdown("**Flags:** " + (", ".join(score["flag_labels"]) or "not flagged"))
        st.warning("A score is not a diagnosis. It estimates risk from recorded data; use clinical judgement.",
                   icon=":material/info:")
with right:
    st.markdown("**Why this score** (largest contributions first)")
    reasons = record["reasons"]  # dicts with "text" and, from the model, "contribution"
    if reasons:
        st.markdown("\n".join(f"{i}. {markdown_text(r['text'])}" for i, r in enumerate(reasons, 1)))
    else:
        st.caption("No reasons recorded for this person (the score run explained only its highest-risk people).")
    weighed = [r for r in reasons if isinstance(r.get("contribution"), (int, float))]
    if weighed:
        st.pyplot(ui.contribution_chart(
            [r["text"].split(" — ")[0] for r in weighed], [float(r["contribution"]) for r in weighed]
        ), width="stretch")
        st.caption("Bars to the right raise the risk, to the left lower it (contribution to the log-odds).")
    if record["missing_predictors"]:
        st.caption("Not recorded (assumed absent): " + ", ".join(record["missing_predictors"]))

# --- conditions and hospital use -------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.markdown("**Long-term conditions**")
    if record["conditions"]:
        st.dataframe(pd.DataFrame(record["conditions"])[["label", "diagnosed_on"]]
                     .rename(columns={"label": "Condition", "diagnosed_on": "Diagnosed"}), hide_index=True)
    else:
        st.caption("None recorded.")
with right:
    st.markdown("**Recent hospital and GP use**")
    if record["hospital_use"]:
        use = pd.DataFrame(record["hospital_use"])
        use["kind"] = use["kind"].map(lambda kind: USE_LABELS.get(kind, kind))
        st.dataframe(use.pivot_table(index="kind", columns="year", values="count", aggfunc="sum", fill_value=0),
                     width="stretch")
    else:
        st.caption("No hospital or GP contacts recorded.")


def forget_form(kind: str) -> None:
    """Drop the form's remembered version, conflict and widget values so it redraws from the store."""
    for key in [k for k in st.session_state if str(k).startswith(f"{kind}_")]:
        del st.session_state[key]


def stale_panel(kind: str, error: StaleEditError, mine: dict, base: dict, on_merge) -> None:
    """What changed since the form was opened, with buttons to reload or merge."""
    st.error(str(error))
    rows = [{"Field": f.replace("_", " "), "Now saved": error.current.get(f), "Yours": mine.get(f)}
            for f in sorted(set(error.changed_fields) | {f for f in mine if mine[f] != base.get(f)})]
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)
    reload_col, merge_col = st.columns(2)
    if reload_col.button("Reload the saved version", key=f"{kind}_reload"):
        forget_form(kind)
        st.rerun()
    if merge_col.button("Keep my changes over the saved version", key=f"{kind}_merge"):
        changed = {f: v for f, v in mine.items() if v != base.get(f)}
        with ui.show_errors():
            on_merge(changed, error.current["version"])
            forget_form(kind)
            st.rerun()


# --- lead professional ------------------------------------------------------------------------
st.divider()
st.subheader("Lead professional")
lead_base = st.session_state.setdefault(f"lead_base_{nhs}", record["lead_professional"])
current_lead = record["lead_professional"]
st.caption(f"Now: {markdown_text(current_lead['name'])} ({markdown_text(current_lead['role'])})"
           if current_lead["name"] else "Nobody assigned yet.")
with st.form(f"lead_form_{nhs}_{lead_base['version']}"):
    lead_name = st.text_input("Name", value=lead_base["name"] or "", key=f"lead_name_{nhs}")
    lead_role = st.selectbox("Role", LEAD_PROFESSIONAL_ROLES, key=f"lead_role_{nhs}",
                             index=LEAD_PROFESSIONAL_ROLES.index(lead_base["role"]) if lead_base["role"] in LEAD_PROFESSIONAL_ROLES else 0)
    save_lead = st.form_submit_button("Save lead professional")
if save_lead:
    mine = {"name": lead_name.strip() or None, "role": lead_role}
    try:
        with ui.show_errors():
            ui.write(careplans.assign_lead_professional, nhs, mine["name"], mine["role"], lead_base["version"])
            forget_form("lead")
            st.rerun()
    except StaleEditError as error:
        st.session_state[f"lead_conflict_{nhs}"] = (error, mine)
if f"lead_conflict_{nhs}" in st.session_state:
    error, mine = st.session_state[f"lead_conflict_{nhs}"]
    stale_panel("lead", error, mine, lead_base, lambda changed, version: ui.write(
        careplans.assign_lead_professional, nhs, {**error.current, **changed}.get("name"),
        {**error.current, **changed}.get("role"), version))

# --- care plan --------------------------------------------------------------------------------
st.divider()
plan = record["care_plan"]
st.subheader(f"Care plan: {ui.plan_label(plan['status'])}")
if plan["status"] == "review_due":
    st.warning(f"The review was due on {plan['next_review']:%d %b %Y}.")
base = st.session_state.setdefault(f"plan_base_{nhs}", plan)
stored_status = base.get("stored_status") or "draft"
default_review = base["next_review"] or date.today() + timedelta(days=review_interval_days())
with st.form(f"plan_form_{nhs}_{base['version']}"):
    status = st.selectbox("Status", SAVED_STATUSES, index=SAVED_STATUSES.index(stored_status),
                          format_func=ui.plan_label, key=f"plan_status_{nhs}")
    goals_text = st.text_area("Goals (one per line)", value="\n".join(base["goals"]), key=f"plan_goals_{nhs}")
    actions = st.data_editor(
        pd.DataFrame(base["actions"] or [], columns=["action", "owner"]), num_rows="dynamic", key=f"plan_actions_{nhs}",
        column_config={"action": st.column_config.TextColumn("Action", width="large"),
                       "owner": st.column_config.TextColumn("Who owns it")},
        width="stretch",
    )
    consent = st.checkbox("Consent to share this plan with the health and social-care team",
                          value=base["consent_to_share"], key=f"plan_consent_{nhs}")
    next_review = st.date_input("Next review", value=default_review, key=f"plan_next_review_{nhs}", format="DD/MM/YYYY")
    close_reason = st.selectbox("Reason for closing (only when closing)", list(CLOSE_REASONS), index=None,
                                format_func=CLOSE_REASONS.get, key=f"plan_close_reason_{nhs}")
    save_plan = st.form_submit_button("Save care plan", type="primary")
if save_plan:
    mine = {
        "status": status,
        "goals": [g.strip() for g in goals_text.splitlines() if g.strip()],
        "actions": [
            {"action": str(r["action"] or "").strip(), "owner": str(r["owner"] or "").strip()}
            for r in actions.fillna("").to_dict("records") if str(r["action"] or "").strip() or str(r["owner"] or "").strip()
        ],
        "consent_to_share": consent,
        "next_review": next_review,
        "close_reason": close_reason if status == "closed" else None,
    }
    try:
        with ui.show_errors():
            ui.write(careplans.save_care_plan, nhs, base["version"], **mine)
            forget_form("plan")
            st.toast("Care plan saved.")
            st.rerun()
    except StaleEditError as error:
        st.session_state[f"plan_conflict_{nhs}"] = (error, mine)
if f"plan_conflict_{nhs}" in st.session_state:
    error, mine = st.session_state[f"plan_conflict_{nhs}"]
    plan_base = {**base, "status": stored_status}
    stale_panel("plan", error, mine, plan_base,
                lambda changed, version: ui.write(careplans.save_care_plan, nhs, version, **changed))

# --- history ----------------------------------------------------------------------------------
st.divider()
st.subheader("History")
if record["care_plan_history"]:
    history = pd.DataFrame(record["care_plan_history"]).sort_values("version", ascending=False)
    history["status"] = history["status"].map(ui.plan_label)
    history["goals"] = history["goals"].map(lambda g: "; ".join(g))
    history["actions"] = history["actions"].map(lambda a: "; ".join(f"{x['action']} ({x['owner']})" for x in a))
    st.dataframe(history[["version", "changed_at", "changed_by", "status", "next_review", "goals", "actions",
                          "consent_to_share", "close_reason"]], hide_index=True, width="stretch")
else:
    st.caption("No care plan yet.")
if record["lead_professional_history"]:
    st.dataframe(pd.DataFrame(record["lead_professional_history"]).sort_values("version", ascending=False),
                 hide_index=True, width="stretch")
