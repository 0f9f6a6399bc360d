"""A playground trained by its own worker thread, so that the page only reads and sends commands.

Before, the page's fragment trained a slice of a second on each redraw, and a click on Pause that
landed during such a rerun could be dropped (measured: 5 of 14 Pause clicks had no effect for
15-45 s on 2 busy cores). Now ``LivePlayground`` trains in a thread of its own; the page asks for
``snapshot()`` a few times a second and answers a click by setting a flag: Run and Pause return
at once (after Pause the page polls until the slice in flight has ended, ``settling``, so that it
ends on the nets' final state); Step waits for that slice, at most ``slice_seconds`` and a snapshot.

Why a thread and not a worker process, as the Train page's runs use: the nets are tiny MLPs on
2-D points, their whole state is read several times a second, and a thread starts in no time. Its
torch work runs with one intra-op thread (engine.one_thread) and the GIL is released inside each
op, so the server keeps answering. A playground that is not polled for ``idle_pause_seconds``
(the tab was closed) pauses itself, as the TensorFlow Playground stops with its page; the thread
exits whenever the playground is paused, so idle sessions hold no thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from explorer.i18n import Translate, untranslated
from explorer.playground.engine import NetView, Playground
from explorer.playground.settings import PlaygroundSettings

SLICE_SECONDS = 0.1  # training between two snapshots, for all nets together
IDLE_PAUSE_SECONDS = 10.0  # no page asked for a snapshot this long: nobody is watching, pause


@dataclass(frozen=True)
class Snapshot:
    """What the page draws, taken between two slices (never half-way through a step)."""

    steps: int
    views: dict[str, NetView]
    taken_at: float  # time.monotonic()


class LivePlayground:
    """One session's playground, trained in the background while running."""

    def __init__(self, settings: PlaygroundSettings, *, slice_seconds: float = SLICE_SECONDS,
                 idle_pause_seconds: float = IDLE_PAUSE_SECONDS):
        self.playground = Playground(settings)
        self.slice_seconds = slice_seconds
        self.idle_pause_seconds = idle_pause_seconds
        self._training = threading.Lock()  # held while the nets change: a slice, a step, new settings
        self._state = threading.Lock()  # guards the flags and the thread below
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last_polled = time.monotonic()
        self._pending: PlaygroundSettings | None = None  # a new rate or batch size for the worker to take
        self.error: BaseException | None = None  # what stopped the worker, for the page to say
        self._stopped: str | None = None  # why it paused by itself ("idle", "diverged"), for the page to say
        self._snapshot = self._take_snapshot()

    # -- what the page reads ----------------------------------------------------------------
    @property
    def settings(self) -> PlaygroundSettings:
        return self._pending or self.playground.settings

    @property
    def steps(self) -> int:
        return self._snapshot.steps

    @property
    def running(self) -> bool:
        return self._running

    @property
    def stopped_because(self) -> str | None:
        """Why it paused by itself (None if it did not), in English."""
        return self.stopped_text()

    def stopped_text(self, _: Translate = untranslated) -> str | None:
        """Why it paused by itself (None if it did not), in the page's language ``_``."""
        if self._stopped == "idle":
            return _("Paused by itself: no page asked for it in {seconds:g} s (the tab was closed or "
                     "hidden).").format(seconds=self.idle_pause_seconds)
        if self._stopped == "diverged":
            return _("Paused by itself: every net diverged (its loss is not a number).")
        return None

    def snapshot(self) -> Snapshot:
        """The newest views; also tells the worker that somebody is still watching."""
        self._last_polled = time.monotonic()
        return self._snapshot

    # -- what the page's buttons do -----------------------------------------------------------
    def run(self) -> None:
        """Start training in the background (returns at once)."""
        with self._state:
            if self._closed:
                raise RuntimeError("this playground was closed")
            self._running, self.error, self._stopped = True, None, None
            self._last_polled = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="playground", daemon=True)
                self._thread.start()

    def pause(self) -> None:
        """Stop after the slice in flight; returns at once. ``settling`` says whether that slice is
        still being finished (its snapshot is the final state)."""
        self._running = False

    @property
    def settling(self) -> bool:
        """Paused, but the worker is still finishing its last slice (the page keeps polling until not)."""
        return not self._running and self._thread is not None

    def wait_until_settled(self) -> None:
        """Until the slice in flight (if any) has ended and its snapshot is taken."""
        with self._training:
            pass

    def step(self, steps: int = 1) -> None:
        """Pause, then (after the slice in flight) train ``steps`` steps and take a snapshot."""
        self.pause()
        with self._training:
            self._take_pending()
            self.playground.step(steps)
            self._snapshot = self._take_snapshot()

    def apply(self, settings: PlaygroundSettings) -> bool:
        """A new learning rate or batch size (True): at once when paused, else from the worker's next
        slice, so the page never waits for the nets. Anything else needs a new playground (False)."""
        if settings == self.settings:
            return True  # every redraw of the page asks; nothing to do, and nothing to wait for
        settings.validate()
        if not self.playground.takes(settings):
            return False
        with self._state:
            if self._thread is not None:  # the worker takes it before its next slice, or as it ends
                self._pending = settings
                return True
        with self._training:
            self._pending = settings
            self._take_pending()
        return True

    def close(self) -> None:
        """Stop for good (new nets replace these); the thread ends after its slice."""
        with self._state:
            self._closed, self._running = True, False

    # -- the worker ---------------------------------------------------------------------------
    def _take_pending(self) -> None:
        """Apply a waiting rate or batch size (the caller holds the training lock)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.playground.apply(pending)

    def _take_snapshot(self) -> Snapshot:
        views = self.playground.views()
        return Snapshot(steps=self.playground.steps, views=views, taken_at=time.monotonic())

    def _should_train(self) -> bool:
        """Whether to train one more slice; the thread forgets itself when not, under the same lock."""
        with self._state:
            if self._running and time.monotonic() - self._last_polled > self.idle_pause_seconds:
                self._running = False
                self._stopped = "idle"
            if not self._running or self._closed:
                self._thread = None
                return False
            return True

    def _work(self) -> None:
        try:
            while self._should_train():
                with self._training:
                    if not self._running:  # paused while waiting for the lock
                        continue
                    self._take_pending()
                    self.playground.run_for(self.slice_seconds)
                    self._snapshot = self._take_snapshot()
                    if all(view.diverged for view in self._snapshot.views.values()):
                        self._running = False
                        self._stopped = "diverged"
            with self._training:  # a rate given while this thread was ending
                self._take_pending()
        except Exception as error:  # noqa: BLE001 - the page says it; the session goes on
            with self._state:
                self._running, self._thread, self.error = False, None, error
