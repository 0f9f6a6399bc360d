"""Who is looking: each browser's key, and whether it is the instructor's.

A class shares one server. Each browser gets a key, kept in a cookie of this app's address only, so
a reload or a second tab keeps it while a shared link (a Playground setup, say) carries nothing of
it; the runs a session starts carry its key, and it sees and controls those and the shared ones
(started from the CLI or by the instructor), never another student's. The instructor sees and
controls every run, and the runs they start are shared with the class.

The instructor is whoever opens the app on the server's own machine (the laptop on the projector),
or any device that adds ``?instructor=TOKEN`` to the address, TOKEN being the value of
$RESNET_EXPLORER_INSTRUCTOR_TOKEN on the server. The token is taken out of the address as soon as it
is read (the screen is projected), and this browser's key is remembered as the instructor's for
the life of the server, so a reload keeps the rights. A tunnel or reverse proxy on the server's
machine (ngrok, cloudflared, nginx) makes every client look local: a loopback request that carries
any forwarding header (X-Forwarded-For, Forwarded, X-Real-IP) is never taken for the server's own
machine, so through a proxy only the token makes an instructor. A proxy that sends none of them
still needs RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR=0.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from dataclasses import dataclass

import streamlit as st

from explorer.ui.i18n import _

COOKIE = "resnet_explorer_session"
COOKIE_DAYS = 30
INSTRUCTOR_PARAM = "instructor"
TOKEN_ENV = "RESNET_EXPLORER_INSTRUCTOR_TOKEN"
LOCAL_IS_INSTRUCTOR_ENV = "RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR"
# Headers a proxy or tunnel adds: a request with any of them came from elsewhere, whatever its socket says.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

# The keys of the browsers that gave the token, for the life of the server: shared by every session,
# so only ever read and added to under the lock.
_instructor_keys: set[str] = set()
_instructor_keys_lock = threading.Lock()


@dataclass(frozen=True)
class Viewer:
    key: str  # this browser session's key
    instructor: bool

    @property
    def owner(self) -> str | None:
        """Whose runs this session's new runs are: its own, or shared (None) for the instructor."""
        return None if self.instructor else self.key

    @property
    def acting_as(self) -> str | None:
        """``by`` for the job manager: None (every right) for the instructor, else this session."""
        return None if self.instructor else self.key

    def sees(self, status: dict) -> bool:
        return self.instructor or status.get("owner") in (None, self.key)

    def describe(self, status: dict) -> str:
        owner = status.get("owner")
        if owner is None:
            return _("shared")
        return _("yours") if owner == self.key else _("student")  # one word: the table's column is narrow


def viewer() -> Viewer:
    """This session's viewer: the browser's key from its cookie, or a new one (see ``remember``)."""
    state = st.session_state
    if "viewer_key" not in state:
        given = st.context.cookies.get(COOKIE, "")
        state["viewer_key"] = given if _looks_like_a_key(given) else secrets.token_urlsafe(12)
    return Viewer(state["viewer_key"], _is_instructor(state["viewer_key"]))


def remember(who: Viewer) -> None:
    """Set the browser's cookie to this session's key, once, if it lacks it: Streamlit reads cookies
    but cannot set them, so a 1-pixel frame of this app's origin does."""
    state = st.session_state
    if st.context.cookies.get(COOKIE) != who.key and not state.get("viewer_cookie_set"):
        state["viewer_cookie_set"] = True
        st.iframe(f"<script>parent.document.cookie = '{COOKIE}={who.key}; path=/; max-age={COOKIE_DAYS * 86400}; "
                  "SameSite=Strict';</script>", width=1, height=1)


def _looks_like_a_key(text: str) -> bool:
    return 8 <= len(text) <= 64 and text.replace("-", "").replace("_", "").isalnum()


def _is_instructor(key: str) -> bool:
    token = os.environ.get(TOKEN_ENV, "")
    given = str(st.query_params.get(INSTRUCTOR_PARAM, ""))
    if given:
        del st.query_params[INSTRUCTOR_PARAM]  # read once, never left in a projected address bar
        if token and hmac.compare_digest(token, given):
            st.session_state["viewer_instructor"] = True  # kept when a page change drops the address's query
            with _instructor_keys_lock:
                _instructor_keys.add(key)
    if st.session_state.get("viewer_instructor"):
        return True
    with _instructor_keys_lock:
        if key in _instructor_keys:  # this browser gave the token before: a reload keeps its rights
            return True
    # Streamlit reports a loopback client's address as None (and Streamlit's AppTest gives no text).
    local = not isinstance(st.context.ip_address, str) and not through_a_proxy()
    return local and os.environ.get(LOCAL_IS_INSTRUCTOR_ENV, "1") != "0"


def through_a_proxy() -> bool:
    """Whether the request carries a forwarding header: a tunnel or proxy passed it on."""
    try:
        headers = st.context.headers
    except Exception:  # noqa: BLE001 - no request to read (AppTest, bare mode): none carried one
        return False
    return any(headers.get(name) for name in FORWARDING_HEADERS)
