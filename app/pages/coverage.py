"""Commissioner coverage: the share of each flagged group with an agreed, in-date care plan and a lead
professional, by practice, PCN or area, and month by month. Counts only, with small numbers suppressed."""

import pandas as pd
import streamlit as st

from app import ui
from app.services import coverage
from app.services.disclosure import format_count, format_percentage

user = ui.page_header(
    "Care-plan coverage",
    "People in each flagged group with an agreed, in-date care plan and a named lead professional. "
    "Counts of 1-7 are suppressed (*) and others rounded to the nearest 5; percentages use the rounded counts.",
)

LEVEL_LABELS = {"practice": "Practice", "pcn": "Primary care network", "area": "Whole area"}
requested = ui.query_param("level")
if requested and requested not in LEVEL_LABELS:
    st.warning(f"{requested!r} is not a coverage level; showing practices.")
    requested = None
if requested and st.session_state.get("coverage_level_from_url") != requested:
    st.session_state["coverage_level_from_url"] = st.session_state["coverage_level"] = requested  # URL wins once
st.session_state.setdefault("coverage_level", "practice")
level = st.segmented_control("By", list(LEVEL_LABELS), format_func=LEVEL_LABELS.get,
                             key="coverage_level") or "practice"

table = None
with ui.show_errors():
    table = ui.cached_read(coverage.coverage, level=level)
if table is None:
    st.stop()
if table.empty or (table["flagged"].fillna(1) == 0).all():  # NA = suppressed, so someone is flagged
    st.info("Nobody is flagged in your area in the current score run, so there is no coverage to show.")
    st.stop()

labels = dict(zip(table["group"], table["group_label"]))  # the current run's, e.g. "Top 2% risk"
if level == "area":
    columns = st.columns(len(labels))
    for column, row in zip(columns, table.itertuples()):
        column.metric(row.group_label, format_percentage(None if pd.isna(row.percent) else float(row.percent)),
                      help=f"{format_count(None if pd.isna(row.covered) else int(row.covered))} of "
                           f"{format_count(None if pd.isna(row.flagged) else int(row.flagged))} people")

cells = table.assign(cell=[
    f"{format_percentage(None if pd.isna(p) else float(p))} "
    f"({format_count(None if pd.isna(c) else int(c))}/{format_count(None if pd.isna(f) else int(f))})"
    for p, c, f in zip(table["percent"], table["covered"], table["flagged"])
])
wide = cells.pivot_table(index=["code", "unit_name"], columns="group_label", values="cell", aggfunc="first", sort=False)
wide = wide[[label for label in labels.values() if label in wide.columns]]
wide.index = wide.index.set_names(["Code", LEVEL_LABELS[level]])
st.dataframe(wide, width="stretch")
st.caption("Each cell: percentage covered (people covered / people flagged).")
st.download_button("Download CSV", coverage.coverage_csv(table), f"coverage_by_{level}.csv", "text/csv",
                   key="coverage_csv")

st.subheader("Month by month")
# Rebuilding 12 months from the plan history takes seconds on a large area, so it is drawn on request.
if not st.toggle("Show the monthly chart", key="show_trend"):
    st.stop()
group = st.selectbox("Flagged group", list(labels), format_func=labels.get, key="trend_group")
trend = None
with ui.show_errors():
    trend = ui.cached_read(coverage.coverage_trend, months=12, level="area")
if trend is None or trend.empty:
    st.info("No history yet: the trend starts once care plans are recorded.")
    st.stop()
series = trend[trend["group"] == group][["month", "percent"]].dropna()
if series.empty:
    st.info("Every month's figure for this group is suppressed (too few people).")
    st.stop()
limits = ui.xmr_limits(series["percent"].astype(float))
st.pyplot(ui.spc_chart(list(pd.to_datetime(series["month"])), list(series["percent"].astype(float)), limits,
                       labels[group]), width="stretch")
st.caption("Statistical process control chart (NHS Making Data Count, XmR): the grey line is the mean, "
           "dashed lines the process limits; an orange point outside them is a special-cause change.")
st.download_button("Download trend CSV", coverage.coverage_csv(trend), "coverage_trend.csv", "text/csv",
                   key="trend_csv")
