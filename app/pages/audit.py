"""Admin audit search and export: who looked at or changed what, and when."""

from datetime import timedelta

import streamlit as st

from app import ui
from app.settings import today as app_today
from app.services import audit

user = ui.page_header("Audit trail", "Every view and change of a person's data, every refusal and sign-in.")

with st.form("audit_search"):
    left, middle, right = st.columns(3)
    username = left.text_input("Username", key="audit_username")
    action = middle.text_input("Action (e.g. view, care_plan_save, access_denied)", key="audit_action")
    entity_id = right.text_input("NHS number or other id", key="audit_entity")
    since = left.date_input("From", value=app_today() - timedelta(days=30), key="audit_since", format="DD/MM/YYYY")
    until = middle.date_input("To", value=app_today(), key="audit_until", format="DD/MM/YYYY")
    st.form_submit_button("Search")

events = None
if since and until and since > until:
    st.error("The 'From' date is after the 'To' date.")
else:
    with ui.show_errors():
        events = ui.read(audit.search_audit, username=username.strip() or None, action=action.strip() or None,
                         entity_id=entity_id.replace(" ", "") or None, since=since, until=until)
if events is None:
    st.stop()
if events.empty:
    st.info("No audit events match.")
    st.stop()
st.caption(f"{len(events):,} events, newest first (at most 5,000).")
shown = events.assign(**{c: events[c].map(lambda v: "" if v is None else str(v)) for c in ("before", "after")})
st.dataframe(shown, hide_index=True, width="stretch")
st.download_button("Download CSV", audit.audit_csv(events), "audit.csv", "text/csv", key="audit_csv")
