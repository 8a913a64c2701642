"""Care navigator caseloads: my people (overdue reviews first), flagged people with no plan yet,
capacity per navigator with a warning when over, and reassignment."""

import pandas as pd
import streamlit as st

from app import ui
from app.services import caseload
from app.services.permissions import Permission
from app.services.careplans import StaleEditError
from app.text_safety import markdown_text

user = ui.person_level_page("Caseloads", "Anything overdue first (a review, an action or a follow-up), then people "
                            "with no plan yet, then by risk.",
                            refusal="cannot open caseloads")

capacity = pd.DataFrame()
with ui.show_errors():
    capacity = ui.read(caseload.navigator_capacity)
navigator_names = dict(zip(capacity["username"], capacity["display_name"]))

if user.can(Permission.HOLD_CASELOAD):
    navigator = user.username
elif capacity.empty:
    st.info("No care navigators work with your practices yet.")
    st.stop()
else:
    navigator = st.selectbox("Navigator", list(navigator_names), format_func=navigator_names.get,
                             key="caseload_navigator")

for row in capacity[capacity["over_capacity"]].itertuples():
    st.warning(f"{markdown_text(row.display_name)} has {row.people} people, over their capacity of {row.caseload_capacity}.")


def assign(nhs_number: str, to_navigator: str, version) -> None:
    try:
        with ui.show_errors():
            result = ui.write(caseload.assign_to_navigator, nhs_number, to_navigator,
                              None if pd.isna(version) else int(version))
            message = f"Assigned to {markdown_text(navigator_names.get(to_navigator, to_navigator))}."
            if result["over_capacity"]:
                message += f" They now have {result['people']} people, over their capacity of {result['capacity']}."
            st.session_state["caseload_message"] = message
            for key in ("unplanned_person", "caseload_person"):  # the person may have left that list
                st.session_state.pop(key, None)
            st.rerun()
    except StaleEditError as error:
        st.error(str(error))
        st.button("Reload", key="caseload_reload")


if "caseload_message" in st.session_state:
    st.success(st.session_state.pop("caseload_message"))

mine, tab_unplanned, tab_capacity = st.tabs(["Caseload", "Flagged, no plan yet", "Capacity"])
with mine:
    people = pd.DataFrame()
    with ui.show_errors():
        people = ui.read(caseload.my_caseload, navigator_username=navigator)
    if people.empty:
        st.info("Nobody on this caseload yet: add people from the 'Flagged, no plan yet' tab.")
    else:
        st.dataframe(pd.DataFrame({
            "Name": people["name"], "NHS number": people["nhs_number"], "Practice": people["practice_code"],
            "Risk": people["probability"].map(ui.percent), "Care plan": people["plan_status"].map(ui.plan_label),
            "Review due": people["next_review"], "Overdue": people["overdue_summary"],
            "Lead professional": people["lead_name"],
        }), hide_index=True, width="stretch")
        names = dict(zip(people["nhs_number"], people["name"]))
        person = st.selectbox("Person", list(names), format_func=lambda n: f"{names[n]} ({n})", key="caseload_person")
        others = [u for u in navigator_names if u != navigator]
        col_open, col_move = st.columns(2)
        if col_open.button("Open patient", key="caseload_open"):
            ui.open_patient(person)
        if others:
            target = col_move.selectbox("Reassign to", others, format_func=navigator_names.get, key="caseload_target")
            if col_move.button("Reassign", key="caseload_reassign"):
                version = people.set_index("nhs_number").at[person, "assignment_version"]
                assign(person, target, version)
        else:
            col_move.caption("No other navigator shares these practices.")

with tab_unplanned:
    unplanned = pd.DataFrame()
    with ui.show_errors():
        unplanned = ui.read(caseload.flagged_without_plan)
    if unplanned.empty:
        st.info("Everyone flagged at your practices has a care plan.")
    else:
        st.caption(f"{len(unplanned):,} flagged people without a care plan, highest risk first.")
        st.dataframe(pd.DataFrame({
            "Name": unplanned["name"], "NHS number": unplanned["nhs_number"],
            "Practice": unplanned["practice_code"], "Risk": unplanned["probability"].map(ui.percent),
            "Navigator": unplanned["navigator"].fillna(""),
        }), hide_index=True, width="stretch")
        free = unplanned[unplanned["navigator"].isna()]
        names = dict(zip(free["nhs_number"], free["name"]))
        if names:
            pick = st.selectbox("Person with no navigator", list(names), format_func=lambda n: f"{names[n]} ({n})",
                                key="unplanned_person")
            if st.button(f"Add to {navigator_names.get(navigator, navigator)}'s caseload", key="unplanned_add"):
                assign(pick, navigator, None)
        else:
            st.caption("Everyone here already has a navigator.")

with tab_capacity:
    if user.can(Permission.HOLD_CASELOAD):
        with st.form("capacity_form"):
            own = capacity.set_index("username")["caseload_capacity"].get(user.username)
            value = st.number_input("My capacity (people)", min_value=1, max_value=caseload.MAX_CAPACITY,
                                    value=int(own) if own is not None and not pd.isna(own) else 50, key="capacity_value")
            if st.form_submit_button("Save capacity"):
                with ui.show_errors():
                    ui.write(caseload.set_capacity, user.username, value)
                    st.rerun()
    if capacity.empty:
        st.info("No care navigators work with your practices yet.")
    else:
        st.dataframe(capacity.rename(columns={
            "display_name": "Navigator", "practice_codes": "Practices", "people": "People",
            "caseload_capacity": "Capacity", "over_capacity": "Over capacity",
        }).drop(columns=["username"]), hide_index=True, width="stretch")
