"""About the model: renders the model folder's model card (TRIPOD+AI) when there is one."""

import streamlit as st

from app import ui

ui.page_header("About the model", "How the risk score was built, how well it works and its limits.")
card = ui.model_folder() / "model_card.md"
if card.is_file():
    st.markdown(card.read_text(encoding="utf-8"))
else:
    st.info(f"No model card yet: train a model into {ui.model_folder()} (or set PROACTIVE_CARE_MODEL_DIR).")
st.caption("A score is not a diagnosis: it estimates the chance of an emergency admission from recorded data.")
