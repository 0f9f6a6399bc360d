"""Share the CPU among trainers that run at once in this process.

``torch.set_num_threads`` is process-wide, and every Python thread that calls into torch runs its
own OpenMP team of that many threads. Four CIFAR nets trained in four threads on 2 cores, each
with 2 intra-op threads, took 16.6 s for 60 steps each; with one intra-op thread each, 8.8 s, as
fast as training them one after the other on both cores (9.7 s). So while more than one trainer
is active, torch gets one thread, and the count it had comes back when the last one stops.

A user may also ask for one thread even alone (``single=True``): the playground's tiny matrix
products are faster on one thread, and OpenMP's spinning workers would slow the page.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_users: dict[object, bool] = {}  # each active user: whether it asked for one thread
_threads_before: int | None = None


@contextmanager
def cpu_thread_share(single: bool = False):
    """Hold a share of the CPU while training on it (nests; restores the count when all leave)."""
    global _threads_before
    token = object()
    with _lock:
        if not _users:
            _threads_before = torch.get_num_threads()
        _users[token] = single
        _apply()
    try:
        yield
    finally:
        with _lock:
            del _users[token]
            _apply()


def _apply() -> None:
    wanted = 1 if len(_users) > 1 or any(_users.values()) else _threads_before
    if wanted and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
