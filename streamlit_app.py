"""Proactive Care: sign-in, the signed-in user, and pages listed by role with st.navigation.

Sign-in is a username and password checked by ``app.services.users.authenticate`` (argon2 hashes
in the store). A deployment can instead use Streamlit's OIDC sign-in by adding an ``[auth]``
section to ``.streamlit/secrets.toml`` (see docs/using_the_app.md): the identity provider's email
address must then match a username in the store, which still decides the role and scope.
What a user may see is decided below the pages, in ``app/services/access.py``.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app import ui
from app.db import session_scope
from app.navigation import PAGES, pages_for
from app.services import audit
from app.services.users import (
    DEMO_PASSWORD_SUFFIX, UnsafeToStart, assert_safe_to_start, authenticate, get_user,
)
from app.settings import demo_mode
from app.store import User

st.set_page_config(page_title="Proactive Care", page_icon=":material/diversity_1:", layout="wide")


def st_page(key: str) -> st.Page:
    page = PAGES[key]
    return st.Page(page.path, title=page.title, icon=f":material/{page.icon}:", url_path=page.url_path)


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False
    except Exception:  # a malformed secrets file means no OIDC, not a crash
        return False


def sign_in_with_oidc() -> None:
    """Map the identity provider's signed-in person to a user in the store."""
    if not st.user.is_logged_in:
        st.button("Sign in with your organisation account", on_click=st.login, type="primary")
        return
    username = str(st.user.get("email") or st.user.get("preferred_username") or "")
    with session_scope(ui.engine(), write=True) as session:
        user = get_user(session, username)
        if user is not None:
            audit.record(session, user, "sign_in", "user", user.username, detail="oidc")
    if user is None:
        st.error(f"There is no Proactive Care account for {username or 'this sign-in'}; ask an administrator.")
        st.button("Sign out", on_click=st.logout)
        return
    st.session_state[ui.USER_KEY] = user
    st.rerun()


def sign_in_page() -> None:
    st.title("Proactive Care")
    st.caption("Risk stratification and care planning for people at high risk of an emergency admission.")
    if oidc_configured():
        sign_in_with_oidc()
        return
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if demo_mode():
        st.caption(f"Demo mode: sign in as practice1, navigator1, mdt1, commissioner or admin; each password is "
                   f"the username followed by {DEMO_PASSWORD_SUFFIX} (see docs/using_the_app.md).")
    if submitted:
        with session_scope(ui.engine(), write=True) as session:
            user = authenticate(session, username, password)
        if user is None:
            st.error("That username and password do not match an active account.")
        else:
            st.session_state[ui.USER_KEY] = user
            st.rerun()


def sign_out() -> None:
    st.session_state.pop(ui.USER_KEY, None)
    st.cache_data.clear()
    if oidc_configured() and st.user.is_logged_in:
        st.logout()


def main() -> None:
    try:
        with session_scope(ui.engine()) as session:
            session.execute(select(User.username).limit(1))  # are the tables there?
            assert_safe_to_start(session)
    except UnsafeToStart as error:
        st.error(str(error))
        st.stop()
    except SQLAlchemyError:
        st.error("The database is not ready: run `proactive-care db upgrade` and `proactive-care load` "
                 "(or `make run`), then reload this page.")
        st.stop()
    user = ui.current_user()
    if user is None:
        st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:")]).run()
        return
    with st.sidebar:
        st.markdown(f"**{user.display_name}**  \n{user.role_label}")
        st.button("Sign out", on_click=sign_out, key="sign_out")
    st.navigation([st_page(name) for name in pages_for(user)]).run()


main()
