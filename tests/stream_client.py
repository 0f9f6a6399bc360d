"""A Streamlit session without a browser: one websocket to the server's stream, as the page's own
script speaks it (Streamlit's protobuf BackMsg and ForwardMsg).

Many of them against one real server make many script runs overlap, cheaply: what a class of
browsers does when its students click at once, without a Chromium per student.

    with StreamSession(url) as session:
        shown = session.open("runs")          # a first visit by the address's path
        shown = session.switch("Train")       # a sidebar click, by the page's script hash
        shown.title, shown.exceptions         # the h1 the run drew, the exception elements it sent
        session.follow(shown.links[label])    # a click on one of its st.page_link
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from websockets.sync.client import connect


@dataclass
class Shown:
    """What one script run sent: its page's h1, the exception elements (their messages), the
    messages shown as errors, and how it ended."""
    asked: str
    title: str | None = None
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # st.page_link label -> the script hash it opens
    texts: list[str] = field(default_factory=list)  # every markdown and caption drawn
    query_string: str | None = None  # the address's query as the server set it, if it changed it
    finished: str | None = None  # ScriptFinishedStatus name; None if it never finished
    started: float = float("nan")  # time.monotonic() when the request was sent
    ended: float = float("nan")  # and when the run's end was read


class StreamSession:
    """One session of the app (a browser tab), driven over its websocket."""

    def __init__(self, url: str, timeout: float = 60, headers: dict[str, str] | None = None):
        self.url = url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.timeout = timeout
        self.headers = headers or {}  # sent with the websocket's opening request, as a proxy would add them
        self.pages: dict[str, str] = {}  # page title -> script hash, from the server's navigation message
        self._stack = ExitStack()
        self._socket = None

    def __enter__(self) -> StreamSession:
        self._socket = self._stack.enter_context(connect(self.url, subprotocols=["streamlit"], max_size=None,
                                                         open_timeout=self.timeout, compression=None,
                                                         additional_headers=self.headers))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def open(self, path: str = "", query: str = "") -> Shown:
        """A first visit to ``/path?query``: the page is asked for by name, as a browser's first load does."""
        return self._run(path, page_name=path, query_string=query)

    def switch(self, title: str) -> Shown:
        """A click on the sidebar's link to the page ``title``."""
        return self._run(title, page_script_hash=self.pages[title])

    def follow(self, script_hash: str) -> Shown:
        """A click on an st.page_link that opens the page with this script hash."""
        titles = {hash_: title for title, hash_ in self.pages.items()}
        return self._run(titles.get(script_hash, script_hash), page_script_hash=script_hash)

    def _run(self, asked: str, **client_state) -> Shown:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        for name, value in client_state.items():
            setattr(message.rerun_script, name, value)
        shown = Shown(asked, started=time.monotonic())
        self._socket.send(message.SerializeToString())
        self._read_until_finished(shown, shown.started + self.timeout)
        shown.ended = time.monotonic()
        return shown

    def _read_until_finished(self, shown: Shown, deadline: float) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        while (left := deadline - time.monotonic()) > 0:
            try:
                payload = self._socket.recv(timeout=left)
            except TimeoutError:
                return
            if isinstance(payload, str):
                continue
            message = ForwardMsg.FromString(payload)
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.pages = {page.page_name: page.page_script_hash for page in message.navigation.app_pages}
            elif kind == "page_info_changed":
                shown.query_string = message.page_info_changed.query_string
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                self._element(message.delta.new_element, shown)
            elif kind == "script_finished":
                status = ForwardMsg.ScriptFinishedStatus.Name(message.script_finished)
                if status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY":
                    continue  # a fragment's timer (a live panel), not the page's run
                shown.finished = status
                if status != "FINISHED_EARLY_FOR_RERUN":
                    return

    @staticmethod
    def _element(element, shown: Shown) -> None:
        kind = element.WhichOneof("type")
        if kind == "heading" and element.heading.tag == "h1" and shown.title is None:
            shown.title = element.heading.body
        elif kind == "exception":
            shown.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "markdown":
            shown.texts.append(element.markdown.body)
        elif kind == "page_link":
            shown.links[element.page_link.label] = element.page_link.page_script_hash
        elif kind == "alert" and element.alert.format == element.alert.ERROR:
            shown.errors.append(element.alert.body)
