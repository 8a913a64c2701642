"""Patient page: who the person is, their score and reasons, conditions and hospital use, the
programme decision (clinical judgement), the holistic assessment, the lead professional and the
personalised care and support plan, sharing and printing it, the MDT agenda, and the history.

The person comes from the ``nhs`` query parameter. Forms remember the version they were drawn
from; saving over a newer version shows what changed with buttons to reload or merge.
"""

import pandas as pd
import streamlit as st

from app import presentation, ui
from app.text_safety import markdown_text
from app.pages.parts import care_sections, plan_form
from app.services import patients
from features.flags import EFI_CATEGORY_LABELS

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
names = record["display_names"]
score = record["score"]
labels = record["group_labels"]  # each flag as the current run words it ("Top 1.3% risk")

# --- who -------------------------------------------------------------------------------------
st.subheader(markdown_text(presentation.person_name(record["given_name"], record["family_name"])))
facts = [f"NHS number {presentation.nhs_number(nhs)}",
         f"born {presentation.day(record['date_of_birth'])} (age {record['age']})",
         "female" if record["sex"] == "F" else "male", markdown_text(record['practice_name'] or record['practice_code'])]
if record["care_home"]:
    facts.append("lives in a care home")
if score is not None and score["efi_category"]:
    facts.append(EFI_CATEGORY_LABELS.get(score["efi_category"], "").lower())
if record["date_of_death"]:
    facts.append(f"died {presentation.day(record['date_of_death'])}")
st.caption(" · ".join(facts))

# --- score and reasons -----------------------------------------------------------------------
left, right = st.columns([1, 2])
with left:
    if score is None:
        st.info("No score for this person in the current run (not registered on the index date).")
    else:
        st.metric("Emergency admission risk", presentation.percent(score["probability"]),
                  help="The estimated chance of at least one emergency admission in the next 12 months.")
        st.caption(presentation.risk_in_words(score["probability"]) + ". "
                   + presentation.rank_in_words(score["percentile"])
                   + (f"; {presentation.rank_in_words(score['practice_percentile'], 'people at the practice').lower()}"
                      if score["practice_percentile"] is not None else "") + ".")
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

care_sections.judgement_section(user, record, labels, names)

# --- conditions and hospital use -------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.markdown("**Long-term conditions**")
    if record["conditions"]:
        st.dataframe(pd.DataFrame([{"Condition": c["label"], "Diagnosed": presentation.day(c["diagnosed_on"])}
                                   for c in record["conditions"]]), hide_index=True)
    else:
        st.caption("None recorded.")
with right:
    st.markdown("**Recent hospital and GP use**")
    if record["hospital_use"]:
        use = pd.DataFrame(record["hospital_use"])
        use["kind"] = use["kind"].map(lambda kind: USE_LABELS.get(kind, kind))
        table = use.pivot_table(index="kind", columns="year", values="count", aggfunc="sum", fill_value=0)
        table.index.name, table.columns.name = "Contacts", None
        st.dataframe(table.rename(columns=str), width="stretch")
    else:
        st.caption("No hospital or GP contacts recorded.")

st.divider()
care_sections.assessment_section(record, names)
st.divider()
plan_form.lead_section(nhs, record["lead_professional"], names)
st.divider()
plan_form.plan_section(nhs, record["care_plan"])
st.divider()
care_sections.share_section(record)
care_sections.meeting_section(record)
st.divider()
plan_form.history_section(record, names)
