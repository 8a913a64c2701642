"""Practice high-risk list: filter, sort by risk, open a person, pick people for the next MDT, export."""

import pandas as pd
import streamlit as st

from app import ui
from app.exports import to_csv_bytes, to_excel_bytes
from app.services import meetings, patients
from app.services.access import check_person_access
from app.services.careplans import PLAN_STATUS_LABELS
from app.text_safety import markdown_text
from app.settings import today as app_today

PICK_LIMIT = 1000

user = ui.person_level_page(
    "High-risk list",
    "People flagged by the current score run at your practices, highest risk first. "
    "A score is not a diagnosis: it is a prompt to review.",
)

practices = sorted(user.practice_codes)
requested = ui.query_param("practice")
if requested and requested not in practices:
    st.warning(f"Practice {requested} is not one of your practices; showing all of yours instead.")
    requested = None

with st.container(horizontal=True):
    practice = st.selectbox(
        "Practice", ["All my practices", *practices],
        index=(practices.index(requested) + 1) if requested else 0, key="list_practice",
    )
    labels = ui.flag_labels()
    flags = st.multiselect("Flag", list(labels), format_func=labels.get, key="list_flags")
    statuses = st.multiselect("Care-plan status", list(PLAN_STATUS_LABELS), format_func=PLAN_STATUS_LABELS.get,
                              key="list_statuses")
    search = st.text_input("Name or NHS number", key="list_search")

table = None
with ui.show_errors():
    table = ui.cached_read(
        patients.flagged_list, flags=flags or None, plan_statuses=statuses or None,
        practice_code=None if practice == "All my practices" else practice, search=search or None,
    )
if table is None:
    st.stop()

with st.form("open_by_number", clear_on_submit=False):
    typed = st.text_input("Open a person by NHS number", key="open_nhs")
    if st.form_submit_button("Open this person"):
        with ui.show_errors():
            found = ui.read(check_person_access, typed)  # refuses out-of-scope numbers with a sentence
            ui.open_patient(found.nhs_number)

if table.empty:
    st.info("Nobody matches: no flagged people at these practices with these filters.")
    st.stop()

shown = pd.DataFrame({
    "NHS number": table["nhs_number"],
    "Name": table["name"],
    "Age": table["age"],
    "Practice": table["practice_code"],
    "Risk": table["probability"],
    "Flagged for": table["flag_labels"],
    "Top reasons": table["reasons"],
    "Lead professional": [
        f"{n} ({r})" if isinstance(n, str) and n else "" for n, r in
        zip(table["lead_professional"], table["lead_professional_role"])
    ],
    "Care plan": table["plan_status"].map(ui.plan_label),
    "Clinical judgement": table["judgement"],
    "Review due": table["next_review"],
    "Navigator": table["navigator"],
})
st.caption(f"{len(shown):,} people. Select rows to open a person or add them to an MDT meeting.")
selection = st.dataframe(
    shown, hide_index=True, width="stretch", key="list_table", on_select="rerun",
    selection_mode="multi-row",
    column_config={
        "Risk": st.column_config.ProgressColumn("Risk", min_value=0.0, max_value=1.0, format="percent"),
        "Review due": st.column_config.DateColumn("Review due", format="D MMM YYYY"),
    },
)
chosen = [table["nhs_number"].iloc[i] for i in (selection.selection.rows if selection else [])]

left, right = st.columns(2)
with left:
    # the highest-risk people only: a selectbox sends every option to the browser
    names = dict(zip(table["nhs_number"].head(PICK_LIMIT), table["name"].head(PICK_LIMIT)))
    person = st.selectbox(
        f"Open a person from this list (highest {min(PICK_LIMIT, len(table)):,} by risk)", list(names), index=None,
        format_func=lambda n: f"{names[n]} ({n})", key="open_from_list",
        placeholder="Choose a person",
    )
    if person or len(chosen) == 1:
        if st.button("Open patient", key="open_patient", type="primary"):
            ui.open_patient(person or chosen[0])
with right:
    upcoming = pd.DataFrame()
    with ui.show_errors():
        upcoming = ui.read(meetings.list_meetings, from_date=app_today())
    to_add = chosen or ([person] if person else [])
    if upcoming.empty:
        st.caption("No upcoming MDT meetings: create one on the MDT meetings page.")
    elif to_add:
        labels = {
            row.meeting_id: f"{row.practice_code} on {row.meeting_date:%d %b %Y}"
            for row in upcoming.itertuples()
        }
        meeting_id = st.selectbox("Add to MDT meeting", list(labels), key="add_meeting",
                                  format_func=labels.get)
        if st.button(f"Add {len(to_add)} selected to the agenda", key="add_to_agenda"):
            with ui.show_errors():
                added = ui.write(meetings.add_to_agenda, meeting_id, to_add)
                (st.warning if added.refused else st.success)(markdown_text(added.sentence()))

export = shown.assign(**{"Risk": (shown["Risk"] * 100).round(1)}).rename(columns={"Risk": "Risk (%)"})
with st.container(horizontal=True):  # files are built only when a button is clicked
    st.download_button("Download CSV", lambda: to_csv_bytes(export), "high_risk_list.csv", "text/csv", key="csv")
    st.download_button(
        "Download Excel", lambda: to_excel_bytes(export, "High-risk list"), "high_risk_list.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="xlsx",
    )
