"""A click on another page must not be undone by a live panel's timer.

Streamlit (1.67) folds rerun requests that arrive while a script run is busy into one, and takes
the page from the newest. The live panels are fragments that rerun on a timer, and each timer's
request names the page it was drawn on. So a click on the sidebar (a full rerun of the page asked
for) followed, before the server has started it, by a timer of the page being left (a fragment
rerun of that page) ends as a full rerun of the page being left: the click is lost. In a class of
30 on 2 cores (bench/classroom.py), 4 clicks of 988 never showed the page asked for, though the
server got each request. Streamlit's own rule is that a full rerun trumps fragment reruns; this
keeps its page too.
"""

from __future__ import annotations

from dataclasses import replace

from streamlit.runtime.scriptrunner_utils import script_requests


def keep_the_page_a_click_asked_for() -> bool:
    """Make a fragment's rerun that is folded into a pending full rerun keep that rerun's page
    (its script hash, name and query string). Idempotent. Whether the fix is in place: False where
    this Streamlit has no such fold to fix (its internals have changed), which leaves it as it is."""
    requests = script_requests.ScriptRequests
    fold = getattr(requests, "_request_rerun_locked", None)
    is_full_rerun = getattr(script_requests, "_is_full_app_rerun", None)
    if fold is None or is_full_rerun is None:
        return False
    if getattr(fold, "keeps_the_page", False):
        return True

    def fold_keeping_the_page(self, new_data):
        pending = self._rerun_data if self._state == script_requests.ScriptRequestType.RERUN else None
        accepted = fold(self, new_data)
        if accepted and pending is not None and is_full_rerun(pending) and not is_full_rerun(new_data):
            self._rerun_data = replace(self._rerun_data, page_script_hash=pending.page_script_hash,
                                       page_name=pending.page_name, query_string=pending.query_string)
        return accepted

    fold_keeping_the_page.keeps_the_page = True
    requests._request_rerun_locked = fold_keeping_the_page
    return True
