"""MDT meetings: create a meeting, see its agenda, record each person's outcome."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from app import ui
from app.services import meetings
from app.services.careplans import LEAD_PROFESSIONAL_ROLES, StaleEditError
from app.text_safety import markdown_text

user = ui.person_level_page(
    "MDT meetings",
    "Plan the multidisciplinary meeting: put people on the agenda from the High-risk list, then record "
    "what the meeting decided for each person.",
    refusal="cannot open MDT meetings",
)

with st.expander("Create a meeting", expanded=False):
    with st.form("new_meeting"):
        practice = st.selectbox("Practice", sorted(user.practice_codes), key="meeting_practice")
        day = st.date_input("Date", value=date.today() + timedelta(days=7), key="meeting_date", format="DD/MM/YYYY")
        roles = st.multiselect("Who will attend", meetings.ATTENDEE_ROLES, default=["GP", "Social worker"],
                               key="meeting_roles")
        if st.form_submit_button("Create meeting", type="primary"):
            with ui.show_errors():
                created = ui.write(meetings.create_meeting, practice, day, roles)
                st.session_state["meeting_id"] = created["meeting_id"]
                st.success(f"Meeting created for {created['practice_code']} on {created['meeting_date']:%d %b %Y}.")

listed = pd.DataFrame()
with ui.show_errors():
    listed = ui.read(meetings.list_meetings)
if listed.empty:
    st.info("No MDT meetings yet: create one above.")
    st.stop()

labels = {
    row.meeting_id: f"{row.meeting_date:%d %b %Y} · {row.practice_code} · {row.people} people, "
                    f"{row.outcomes_recorded} outcomes"
    for row in listed.itertuples()
}
requested = ui.query_param("meeting")
if requested is not None:
    if requested.isdigit() and int(requested) in labels:
        st.session_state.setdefault("meeting_id", int(requested))
    else:
        st.warning(f"Meeting {requested} is not one of your practices' meetings.")
upcoming = [m for m, d in zip(listed["meeting_id"], listed["meeting_date"]) if d >= date.today()]
default = st.session_state.get("meeting_id", upcoming[0] if upcoming else listed["meeting_id"].iloc[-1])
meeting_id = st.selectbox("Meeting", list(labels), format_func=labels.get,
                          index=list(labels).index(default) if default in labels else 0)
meeting = listed.set_index("meeting_id").loc[meeting_id]
st.caption("Attending: " + ", ".join(meeting["attendee_roles"]))

items = pd.DataFrame()
with ui.show_errors():
    items = ui.read(meetings.agenda, meeting_id)
if items.empty:
    st.info("Nobody on this agenda yet: select people on the High-risk list and add them to this meeting.")
    st.stop()

st.dataframe(pd.DataFrame({
    "#": items["position"], "Name": items["name"], "NHS number": items["nhs_number"],
    "Risk": items["probability"].map(ui.percent), "Care plan": items["plan_status"].map(ui.plan_label),
    "Lead professional": [f"{n} ({r})" if isinstance(n, str) and n else "" for n, r in zip(items["lead_name"], items["lead_role"])],
    "Outcome": items["outcome"].map(lambda o: meetings.OUTCOMES.get(o, "") if isinstance(o, str) else ""),
}), hide_index=True, width="stretch")

st.subheader("Record outcomes")
for item in items.itertuples():
    done = isinstance(item.outcome, str)
    title = f"{item.position}. {markdown_text(item.name)} — " + (meetings.OUTCOMES[item.outcome] if done else "not discussed yet")
    with st.expander(title, expanded=False):
        with st.form(f"outcome_{item.item_id}_{item.version}"):
            outcome = st.radio("Outcome", list(meetings.OUTCOMES), format_func=meetings.OUTCOMES.get,
                               key=f"outcome_{item.item_id}", horizontal=True)
            name = st.text_input("Lead professional's name (if assigned)", key=f"outcome_lead_{item.item_id}")
            role = st.selectbox("Their role", LEAD_PROFESSIONAL_ROLES, key=f"outcome_role_{item.item_id}")
            reason = st.text_input("Reason or note (required when not appropriate)", key=f"outcome_reason_{item.item_id}")
            if st.form_submit_button("Record outcome"):
                try:
                    with ui.show_errors():
                        ui.write(meetings.record_outcome, item.item_id, item.version, outcome,
                                 lead_name=name, lead_role=role, reason=reason)
                        st.rerun()
                except StaleEditError as error:
                    st.error(str(error))
                    st.button("Reload the agenda", key=f"reload_{item.item_id}")
        if st.button("Open patient", key=f"open_{item.item_id}"):
            ui.open_patient(item.nhs_number)
