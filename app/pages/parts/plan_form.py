"""The patient page's lead-professional and care-plan forms (Streamlit), with the stale-edit panel.

Both forms remember the version they were drawn from; saving over a newer version shows what a
colleague changed, in words, with buttons to reload or keep one's own changes on top.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from app import presentation, ui
from app.text_safety import markdown_text
from app.services import careplans, plan_content
from app.services.careplans import CLOSE_REASONS, LEAD_PROFESSIONAL_ROLES, SAVED_STATUSES, StaleEditError
from app.settings import review_interval_days, today as app_today

ACTION_COLUMNS = {"action": "What will be done", "owner": "Who will do it", "due": "By when", "done_on": "Done on"}
FOLLOW_UP_COLUMNS = {"due": "When", "what": "What (e.g. phone call, home visit)", "who": "Who", "done_on": "Done on"}
CONTACT_COLUMNS = {"name": "Name", "relationship": "Who they are (e.g. daughter)", "phone": "Phone", "carer": "Carer"}


def forget_form(kind: str) -> None:
    """Drop the form's remembered version, conflict and widget values so it redraws from the store."""
    for key in [k for k in st.session_state if str(k).startswith(f"{kind}_")]:
        del st.session_state[key]


def stale_panel(kind: str, error: StaleEditError, mine: dict, base: dict, on_merge) -> None:
    """What changed since the form was opened, in words, with buttons to reload or merge."""
    st.error(str(error))
    fields = sorted(set(error.changed_fields) | {f for f in mine if mine[f] != base.get(f)})
    rows = [{"What": careplans.FIELD_LABELS.get(f, f), "Saved by your colleague": careplans.field_in_words(f, error.current.get(f)),
             "Yours": careplans.field_in_words(f, mine.get(f))} for f in fields]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
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


def lead_section(nhs: str, current: dict, names: dict) -> None:
    st.subheader("Lead professional")
    base = st.session_state.setdefault(f"lead_base_{nhs}", current)
    if current["name"]:
        st.caption(f"Now: {markdown_text(current['name'])} ({current['role']}), named by "
                   f"{markdown_text(presentation.user_name(names, current['updated_by']))} on {presentation.day(current['updated_at'])}.")
    else:
        st.caption("Nobody assigned yet.")
    with st.form(f"lead_form_{nhs}_{base['version']}"):
        name = st.text_input("Name", value=base["name"] or "", key=f"lead_name_{nhs}")
        role = st.selectbox("Role", LEAD_PROFESSIONAL_ROLES, key=f"lead_role_{nhs}",
                            index=LEAD_PROFESSIONAL_ROLES.index(base["role"]) if base["role"] in LEAD_PROFESSIONAL_ROLES else 0)
        submitted = st.form_submit_button("Save lead professional")
    if submitted:
        mine = {"name": name.strip() or None, "role": role}
        try:
            with ui.show_errors():
                ui.write(careplans.assign_lead_professional, nhs, mine["name"], mine["role"], base["version"])
                forget_form("lead")
                st.rerun()
        except StaleEditError as error:
            st.session_state[f"lead_conflict_{nhs}"] = (error, mine)
    if f"lead_conflict_{nhs}" in st.session_state:
        error, mine = st.session_state[f"lead_conflict_{nhs}"]
        stale_panel("lead", error, mine, base, lambda changed, version: ui.write(
            careplans.assign_lead_professional, nhs, {**error.current, **changed}.get("name"),
            {**error.current, **changed}.get("role"), version))


def _editor_frame(rows: list[dict], columns: dict[str, str], dates: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows or [], columns=list(columns))
    for column in dates:
        frame[column] = pd.to_datetime(frame[column], errors="coerce").dt.date
    return frame


def _editor_rows(frame: pd.DataFrame, columns: dict[str, str], dates: tuple[str, ...]) -> list[dict]:
    """The edited rows in the store's shape (ISO dates, None for blanks); empty rows dropped."""
    rows = []
    for row in frame.to_dict("records"):
        cleaned = {}
        for column in columns:
            value = row.get(column)
            if column in dates:
                value = None if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()
            elif column == "carer":
                value = bool(value) if value is not None and not pd.isna(value) else False
            else:
                value = None if value is None or pd.isna(value) or not str(value).strip() else str(value).strip()
            cleaned[column] = value
        if any(v not in (None, False) for v in cleaned.values()):
            rows.append(cleaned)
    return rows


def _editor(label: str, rows: list[dict], columns: dict[str, str], dates: tuple[str, ...], key: str):
    config = {c: (st.column_config.DateColumn(title, format="D MMM YYYY") if c in dates
                  else st.column_config.CheckboxColumn(title) if c == "carer"
                  else st.column_config.TextColumn(title, width="large" if c in ("action", "what") else "medium"))
              for c, title in columns.items()}
    st.markdown(f"**{label}**")
    return st.data_editor(_editor_frame(rows, columns, dates), num_rows="dynamic", key=key,
                          column_config=config, hide_index=True, width="stretch")


def plan_section(nhs: str, plan: dict) -> None:
    st.subheader(f"Care plan: {ui.plan_label(plan['status'])}")
    if plan["status"] == "review_due":
        st.warning(f"The review was due on {presentation.day(plan['next_review'])}.")
    today = app_today()
    overdue = plan_content.overdue_items(plan["actions"], today) + plan_content.overdue_items(plan["follow_ups"], today)
    if overdue:
        st.warning("Overdue: " + "; ".join(f"{markdown_text(i.get('action') or i.get('what'))} (due {presentation.day(i['due'])})"
                                           for i in overdue))
    coming = sorted(plan_content.open_items(plan["actions"]) + plan_content.open_items(plan["follow_ups"]),
                    key=lambda i: str(i.get("due") or ""))
    if coming:
        st.markdown("**What happens next:**\n" + "\n".join(
            f"- {presentation.day(i.get('due'), missing='no date')}: {markdown_text(i.get('action') or i.get('what'))} "
            f"({markdown_text(i.get('owner') or i.get('who'))})" for i in coming))
    if plan["version"] and not plan_content.has_contingency(plan["contingency"]):
        st.info("This plan has no contingency plan yet: who the person calls in the day and at night instead of 999.")
    base = st.session_state.setdefault(f"plan_base_{nhs}", plan)
    stored_status = base.get("stored_status") or "draft"
    contingency = base.get("contingency") or {}
    default_review = base["next_review"] or today + timedelta(days=review_interval_days())
    with st.form(f"plan_form_{nhs}_{base['version']}"):
        status = st.selectbox("Status", SAVED_STATUSES, index=SAVED_STATUSES.index(stored_status),
                              format_func=ui.plan_label, key=f"plan_status_{nhs}")
        what_matters = st.text_area("What matters to the person (in their words)", value=base["what_matters"] or "",
                                    key=f"plan_what_matters_{nhs}")
        goals_text = st.text_area("Goals (one per line)", value="\n".join(base["goals"]), key=f"plan_goals_{nhs}")
        actions = _editor("Actions: each with who will do it and by when", base["actions"], ACTION_COLUMNS,
                          ("due", "done_on"), f"plan_actions_{nhs}")
        st.markdown("**If things get worse: who to call instead of 999**")
        day_col, night_col = st.columns(2)
        day_name = day_col.text_input("In the day, call", value=contingency.get("day_name", ""), key=f"plan_day_name_{nhs}",
                                      placeholder="e.g. Community nursing team")
        day_phone = day_col.text_input("Day-time phone number", value=contingency.get("day_phone", ""),
                                       key=f"plan_day_phone_{nhs}")
        night_name = night_col.text_input("At night and at weekends, call", value=contingency.get("night_name", ""),
                                          key=f"plan_night_name_{nhs}", placeholder="e.g. NHS 111")
        night_phone = night_col.text_input("Night-time phone number", value=contingency.get("night_phone", ""),
                                           key=f"plan_night_phone_{nhs}")
        what_to_do = st.text_area("What to look out for and what to do", value=contingency.get("what_to_do", ""),
                                  key=f"plan_what_to_do_{nhs}")
        contacts = _editor("Carers and key contacts", base["contacts"], CONTACT_COLUMNS, (), f"plan_contacts_{nhs}")
        follow_ups = _editor("Follow-up schedule", base["follow_ups"], FOLLOW_UP_COLUMNS, ("due", "done_on"),
                             f"plan_follow_ups_{nhs}")
        consent = st.checkbox("Consent to share this plan with the health and social-care team",
                              value=base["consent_to_share"], key=f"plan_consent_{nhs}")
        next_review = st.date_input("Next review", value=default_review, key=f"plan_next_review_{nhs}",
                                    format="DD/MM/YYYY")
        close_reason = st.selectbox("Reason for closing (only when closing)", list(CLOSE_REASONS), index=None,
                                    format_func=CLOSE_REASONS.get, key=f"plan_close_reason_{nhs}")
        submitted = st.form_submit_button("Save care plan", type="primary")
    if submitted:
        mine = {
            "status": status,
            "what_matters": what_matters.strip() or None,
            "goals": [g.strip() for g in goals_text.splitlines() if g.strip()],
            "actions": _editor_rows(actions, ACTION_COLUMNS, ("due", "done_on")),
            "contingency": {k: v.strip() for k, v in (("day_name", day_name), ("day_phone", day_phone),
                                                      ("night_name", night_name), ("night_phone", night_phone),
                                                      ("what_to_do", what_to_do)) if v and v.strip()},
            "contacts": _editor_rows(contacts, CONTACT_COLUMNS, ()),
            "follow_ups": _editor_rows(follow_ups, FOLLOW_UP_COLUMNS, ("due", "done_on")),
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
        stale_panel("plan", error, mine, {**base, "status": stored_status},
                    lambda changed, version: ui.write(careplans.save_care_plan, nhs, version, **changed))
    if plan["version"]:
        add_item_form(nhs, plan)


def add_item_form(nhs: str, plan: dict) -> None:
    """One action or follow-up at a time, without the table editor (as a call or visit is arranged)."""
    with st.expander("Add an action or a follow-up", expanded=False):
        with st.form(f"plan_add_{nhs}_{plan['version']}", clear_on_submit=True):
            kind = st.radio("Add", ["Action", "Follow-up"], horizontal=True, key=f"plan_add_kind_{nhs}")
            what = st.text_input("What", key=f"plan_add_what_{nhs}", placeholder="e.g. Phone call to check on falls")
            who = st.text_input("Who will do it", key=f"plan_add_who_{nhs}")
            when = st.date_input("When (or by when)", value=app_today() + timedelta(days=14),
                                 key=f"plan_add_when_{nhs}", format="DD/MM/YYYY")
            if st.form_submit_button("Add to the plan"):
                item = ({"action": what, "owner": who, "due": when} if kind == "Action"
                        else {"what": what, "who": who, "due": when})
                try:
                    with ui.show_errors():
                        ui.write(careplans.add_to_plan, nhs, plan["version"],
                                 **({"action": item} if kind == "Action" else {"follow_up": item}))
                        forget_form("plan")
                        st.toast(f"{kind} added to the plan.")
                        st.rerun()
                except StaleEditError as error:
                    st.error(str(error))


def history_section(record: dict, names: dict) -> None:
    st.subheader("History")
    if record["care_plan_history"]:
        rows = [{
            "Version": h["version"], "Saved": presentation.moment(h["changed_at"]),
            "By": presentation.user_name(names, h["changed_by"]),
            **{careplans.FIELD_LABELS[f]: careplans.field_in_words(f, h[f])
               for f in ("status", "next_review", "what_matters", "goals", "actions", "contingency", "follow_ups",
                         "contacts", "consent_to_share", "close_reason")},
        } for h in reversed(record["care_plan_history"])]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption("No care plan yet.")
    if record["lead_professional_history"]:
        st.dataframe(pd.DataFrame([{
            "Version": h["version"], "Saved": presentation.moment(h["changed_at"]),
            "By": presentation.user_name(names, h["changed_by"]),
            "Lead professional": h["name"] or "Nobody", "Their role": h["role"] or "",
        } for h in reversed(record["lead_professional_history"])]), hide_index=True, width="stretch")
