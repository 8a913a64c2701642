"""MDT meetings: create a meeting, work from its agenda (each person's reasons, frailty, plan and
open actions; a printable copy) and record each person's outcome against their plan."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from app import presentation, ui
from app.text_safety import markdown_text
from app.pages.parts import care_sections
from app.services import documents, meetings
from app.services.careplans import LEAD_PROFESSIONAL_ROLES, StaleEditError
from app.settings import review_interval_days, today as app_today

user = ui.person_level_page(
    "MDT meetings",
    "Plan the multidisciplinary meeting: put people on the agenda from the High-risk list or a patient's page, "
    "then work through the agenda and record what the meeting decided for each person.",
    refusal="cannot open MDT meetings",
)

with st.expander("Create a meeting", expanded=False):
    with st.form("new_meeting"):
        practice = st.selectbox("Practice", sorted(user.practice_codes), key="meeting_practice")
        day = st.date_input("Date", value=app_today() + timedelta(days=7), key="meeting_date", format="DD/MM/YYYY")
        roles = st.multiselect("Who will attend", meetings.ATTENDEE_ROLES, default=["GP", "Social worker"],
                               key="meeting_roles")
        if st.form_submit_button("Create meeting", type="primary"):
            with ui.show_errors():
                created = ui.write(meetings.create_meeting, practice, day, roles)
                st.session_state["meeting_id"] = created["meeting_id"]
                st.success(f"Meeting created for {created['practice_code']} on {presentation.day(created['meeting_date'])}.")

listed = pd.DataFrame()
with ui.show_errors():
    listed = ui.read(meetings.list_meetings)
if listed.empty:
    st.info("No MDT meetings yet: create one above.")
    st.stop()

labels = {
    row.meeting_id: f"{presentation.day(row.meeting_date)} · {row.practice_code} · "
                    f"{presentation.count(row.people)} people, {presentation.count(row.outcomes_recorded)} outcomes"
    for row in listed.itertuples()
}
requested = ui.query_param("meeting")
if requested is not None:
    if requested.isdigit() and int(requested) in labels:
        st.session_state.setdefault("meeting_id", int(requested))
    else:
        st.warning(f"Meeting {requested} is not one of your practices' meetings.")
upcoming = [m for m, d in zip(listed["meeting_id"], listed["meeting_date"]) if d >= app_today()]
default = st.session_state.get("meeting_id", upcoming[0] if upcoming else listed["meeting_id"].iloc[-1])
meeting_id = st.selectbox("Meeting", list(labels), format_func=labels.get,
                          index=list(labels).index(default) if default in labels else 0)
meeting = listed.set_index("meeting_id").loc[meeting_id]
st.caption("Attending: " + ", ".join(meeting["attendee_roles"]))

items = pd.DataFrame()
with ui.show_errors():
    items = ui.read(meetings.agenda, meeting_id)
hidden = items.attrs.get("not_shown", 0)
if hidden:
    st.caption(f"{presentation.count(hidden)} {'person' if hidden == 1 else 'people'} on this agenda "
               "no longer shown: registered at another practice now, or outside your practices.")
if items.empty:
    st.info("Nobody on this agenda yet: select people on the High-risk list and add them to this meeting.")
    st.stop()

st.download_button("Print the agenda", care_sections.deferred_document(documents.agenda_document, meeting_id),
                   f"mdt_agenda_{meeting['practice_code']}_{meeting['meeting_date']}.html", "text/html",
                   key=f"agenda_print_{meeting_id}", on_click="ignore", help="A page to print or share on screen at the meeting (audited).")


def _text(value, missing: str = "") -> str:
    return value if isinstance(value, str) and value else missing


st.dataframe(pd.DataFrame({
    "#": items["position"], "Name": items["name"], "NHS number": items["nhs_number"].map(presentation.nhs_number),
    "Age": items["age"], "Risk": items["probability"].map(presentation.percent),
    "Why on the list": [", ".join(f) for f in items["flag_labels"]], "Frailty": items["frailty"],
    "Care plan": items["plan_status"].map(ui.plan_label),
    "Open actions": [f"{len(a)} ({o} overdue)" if o else str(len(a)) for a, o in zip(items["open_actions"], items["overdue_actions"])],
    "Lead professional": [f"{n} ({r})" if _text(n) else "" for n, r in zip(items["lead_name"], items["lead_role"])],
    "Outcome": items["outcome"].map(lambda o: meetings.OUTCOMES.get(o, "") if isinstance(o, str) else ""),
}), hide_index=True, width="stretch")

st.subheader("Work through the agenda")
for item in items.itertuples():
    done = isinstance(item.outcome, str)
    title = f"{item.position}. {markdown_text(item.name)}: " + (meetings.OUTCOMES[item.outcome] if done else "not discussed yet")
    with st.expander(title, expanded=False):
        st.markdown(f"**Why on the list:** {', '.join(item.flag_labels) or 'Not flagged'}"
                    + (f" ({markdown_text(item.judgement)})" if item.judgement else "") + f". {item.frailty}. "
                    + presentation.risk_in_words(item.probability) + ".")
        if item.reasons:
            st.markdown("**Main reasons:** " + "; ".join(markdown_text(r) for r in item.reasons))
        st.markdown(f"**Care plan:** {ui.plan_label(item.plan_status)}"
                    + (f", next review {presentation.day(item.next_review)}" if isinstance(item.next_review, date) else "")
                    + ("" if item.has_contingency or item.plan_status == "none" else ". No contingency plan yet."))
        st.markdown("**What matters to them:** " + (markdown_text(_text(item.what_matters)) or "Not written down yet"))
        if item.open_actions:
            st.markdown("**Open actions:**\n" + "\n".join(
                f"- {markdown_text(a.get('action'))}: {markdown_text(a.get('owner'))}, "
                f"due {presentation.day(a.get('due'), missing='no date')}" for a in item.open_actions))
        st.markdown("**Last assessment:** " + (
            presentation.day(item.last_assessed_on) + (f"; needs action on {', '.join(item.needs_action)}" if item.needs_action else "")
            if isinstance(item.last_assessed_on, date) else "none recorded"))
        with st.form(f"outcome_{item.item_id}_{item.version}"):
            outcome = st.radio("Outcome", list(meetings.OUTCOMES), format_func=meetings.OUTCOMES.get,
                               key=f"outcome_{item.item_id}", horizontal=True)
            name_col, role_col = st.columns(2)
            name = name_col.text_input("Lead professional's name (if assigned)", key=f"outcome_lead_{item.item_id}")
            role = role_col.selectbox("Their role", LEAD_PROFESSIONAL_ROLES, key=f"outcome_role_{item.item_id}")
            reason = st.text_input("Reason or note (required when not appropriate)", key=f"outcome_reason_{item.item_id}")
            st.markdown("**What the meeting agreed for the care plan** (care plan started or reviewed)")
            agree_col, review_col = st.columns(2)
            agree = agree_col.checkbox("Agree the plan now", key=f"outcome_agree_{item.item_id}")
            next_review = review_col.date_input("Next review", value=None, key=f"outcome_review_{item.item_id}",
                                                format="DD/MM/YYYY",
                                                help=f"Usually in {review_interval_days()} days; needed for a review.")
            new_actions = st.data_editor(
                pd.DataFrame(columns=["action", "owner", "due"]).astype({"due": "datetime64[ns]"}), num_rows="dynamic",
                key=f"outcome_actions_{item.item_id}", hide_index=True, width="stretch",
                column_config={"action": st.column_config.TextColumn("New action", width="large"),
                               "owner": st.column_config.TextColumn("Who will do it"),
                               "due": st.column_config.DateColumn("By when", format="D MMM YYYY")})
            if st.form_submit_button("Record outcome"):
                actions = [{"action": r.get("action"), "owner": r.get("owner"),
                            "due": None if pd.isna(r.get("due")) else pd.Timestamp(r["due"]).date().isoformat()}
                           for r in new_actions.to_dict("records")
                           if any(not pd.isna(v) and str(v).strip() for v in r.values())]
                plan = {"status": "agreed" if agree else None, "next_review": next_review, "add_actions": actions}
                try:
                    with ui.show_errors():
                        ui.write(meetings.record_outcome, item.item_id, item.version, outcome, lead_name=name,
                                 lead_role=role, reason=reason, plan=plan, plan_version=item.plan_version)
                        st.rerun()
                except StaleEditError as error:
                    st.error(str(error))
                    st.button("Reload the agenda", key=f"reload_{item.item_id}")
        if st.button("Open patient", key=f"open_{item.item_id}"):
            ui.open_patient(item.nhs_number)
