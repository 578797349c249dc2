"""The dashboard's optional password gate (``ALGOSTACK_DASHBOARD_PASSWORD``).

The password is compared in constant time and never rendered, logged or echoed back; a
session that passed the gate stays in for the life of its browser tab.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

SESSION_KEY = "algostack_authenticated"


def check_password(given: str, expected: SecretStr) -> bool:
    """True when ``given`` equals the expected password (constant-time compare)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def gate(expected: SecretStr | None) -> bool:
    """Render the login form when a password is set; True once this session is in."""
    import streamlit as st

    if expected is None or not expected.get_secret_value():
        return True
    if st.session_state.get(SESSION_KEY):
        return True
    st.title("algostack desk")
    with st.form("login"):
        given = st.text_input("Password", type="password", key="algostack_password_input")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if check_password(given, expected):
            st.session_state[SESSION_KEY] = True
            st.session_state.pop("algostack_password_input", None)
            st.rerun()
        st.error("Wrong password.")
    return False
