"""Reading .jsonl record files incrementally: each read parses only what was appended since the last.

A run's metrics.jsonl grows by a line at a time while it trains, and the pages read it again every
second; the GPU schedule's 64k steps make a 50 MB file. ``JsonlCache`` keeps, per path, the byte
offset of the last complete line it parsed and the records up to there, so a second read costs
what was appended, not the whole file:

- a half-written last line (no newline yet) is reported, not kept, and read again next time;
- a file that shrank, was replaced (another inode: a resume rewrites the file and renames it over
  the old one) or whose bytes before the offset changed is read again from the start;
- at most ``max_files`` files and ``max_bytes`` of their text are kept, least recently read
  dropped first; one lock per file, so two sessions reading the same run parse it once.

Callers get new lists, but the record dicts are shared between them: treat them as read-only.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

# A few hundred runs' files: every run a class makes in a day, metrics and probes.
MAX_FILES = 256
# The text of the files kept: a 50 MB metrics file parses to about 3 times that in Python objects,
# so this keeps the few longest runs a page shows and drops the rest first.
MAX_BYTES = 256 * 2**20
# The bytes just before the offset that must be unchanged for the cached records to still hold
# (the inode alone can be reused once a replaced file is deleted).
_CHECK_BYTES = 64


@dataclass
class Records:
    """What a .jsonl file held, and the lines that could not be read."""

    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _parse(line: bytes) -> dict:
    record = json.loads(line.decode("utf-8", errors="replace"))
    if not isinstance(record, dict):
        raise ValueError("not an object")
    return record


class _File:
    """One file's parsed complete lines, and where its unread bytes start."""

    def __init__(self):
        self.lock = threading.Lock()
        self.identity: tuple[int, int] | None = None  # (device, inode)
        self.offset = 0  # bytes through the last complete line
        self.lines = 0  # complete lines so far, blank ones included (problems name line numbers)
        self.records: list[dict] = []
        self.problems: list[str] = []
        self.check = b""  # the last bytes before ``offset``

    def reset(self) -> None:
        self.identity, self.offset, self.lines, self.records, self.problems, self.check = None, 0, 0, [], [], b""


class JsonlCache:
    """Parsed .jsonl files by path, brought up to date on each ``read``; thread-safe.

    ``parsed_lines`` counts every line handed to the JSON parser, for tests that check a read
    parsed only what was new.
    """

    def __init__(self, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES):
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.parsed_lines = 0
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str | Path) -> Records:
        path = Path(path)
        key = os.path.abspath(path)
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                entry = self._files[key] = _File()
            self._files.move_to_end(key)
        with entry.lock:
            tail = self._update(entry, path)
            result = Records(list(entry.records), list(entry.problems))
            number = entry.lines + 1
        if tail:
            self._add_tail(result, tail, path.name, number)
        self._evict()
        return result

    def holds(self, path: str | Path) -> bool:
        with self._lock:
            return os.path.abspath(path) in self._files

    def forget(self, path: str | Path) -> None:
        with self._lock:
            self._files.pop(os.path.abspath(path), None)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)

    def _update(self, entry: _File, path: Path) -> bytes:
        """Parse the complete lines appended since the last read; returns the unfinished last line."""
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            entry.reset()
            return b""
        with handle:
            stat = os.fstat(handle.fileno())
            identity = (stat.st_dev, stat.st_ino)
            if identity != entry.identity or stat.st_size < entry.offset:
                entry.reset()
            elif entry.check:
                handle.seek(entry.offset - len(entry.check))
                if handle.read(len(entry.check)) != entry.check:
                    entry.reset()  # rewritten in place: start over
            entry.identity = identity
            handle.seek(entry.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        complete, tail = data[:end], data[end:]
        if complete:
            self._parse_lines(entry, complete, path.name)
            entry.offset += len(complete)
            entry.check = (entry.check + complete)[-_CHECK_BYTES:]
        return tail

    def _parse_lines(self, entry: _File, text: bytes, name: str) -> None:
        lines = text.split(b"\n")[:-1]
        numbered = [(number, line.strip()) for number, line in enumerate(lines, start=entry.lines + 1) if line.strip()]
        entry.lines += len(lines)
        self.parsed_lines += len(numbered)
        # One parse of all the lines as a JSON array is about a third faster than one per line. It
        # is used only when every line looks like one object and it gives one object per line;
        # otherwise (a corrupt line) each line is parsed alone, and the bad ones are named.
        if all(line[:1] == b"{" and line[-1:] == b"}" for _, line in numbered):
            try:
                joined = b"[" + b",".join(line for _, line in numbered) + b"]"
                batch = json.loads(joined.decode("utf-8", errors="replace"))  # a str parses twice as fast
            except (ValueError, RecursionError):
                batch = None
            if batch is not None and len(batch) == len(numbered) and all(type(item) is dict for item in batch):
                entry.records.extend(batch)
                return
        for number, line in numbered:
            try:
                entry.records.append(_parse(line))
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                entry.problems.append(f"{name} line {number}: corrupt (skipped)")

    def _add_tail(self, result: Records, tail: bytes, name: str, number: int) -> None:
        if not tail.strip():
            return
        self.parsed_lines += 1
        try:
            result.records.append(_parse(tail))  # a whole record without its newline (yet)
        except (ValueError, RecursionError):
            result.problems.append(f"{name} line {number}: half-written (skipped)")

    def _evict(self) -> None:
        with self._lock:
            total = sum(entry.offset for entry in self._files.values())
            while len(self._files) > 1 and (len(self._files) > self.max_files or total > self.max_bytes):
                _, dropped = self._files.popitem(last=False)
                total -= dropped.offset


CACHE = JsonlCache()


def read_jsonl(path: str | Path) -> Records:
    """Every record of a .jsonl file (a missing file has none); only new lines are parsed."""
    return CACHE.read(path)


def last_records(path: str | Path, wanted: dict, scan_bytes: int = 4 * 2**20) -> dict[str, dict]:
    """The last record of each kind in ``wanted`` (name -> {key: value} to match), for listings.

    From the cache when the file is in it; otherwise the file is read backwards from its end, up
    to ``scan_bytes``, so a table of long runs costs a few kilobytes each; a kind not found there
    is looked for in the whole file, which is then cached.
    """
    path = Path(path)
    found: dict[str, dict] = {}
    if not CACHE.holds(path):
        found = _scan_backwards(path, wanted, scan_bytes)
        if len(found) == len(wanted) or not path.exists() or path.stat().st_size <= scan_bytes:
            return found
    for record in reversed(read_jsonl(path).records):
        if _take_matches(record, wanted, found):
            break
    return found


def _take_matches(record: dict, wanted: dict, found: dict[str, dict]) -> bool:
    """Keep ``record`` for each wanted kind it matches and that is not found yet; whether all are found."""
    for kind, match in wanted.items():
        if kind not in found and all(record.get(k) == v for k, v in match.items()):
            found[kind] = record
    return len(found) == len(wanted)


def _scan_backwards(path: Path, wanted: dict, scan_bytes: int, block: int = 64 * 1024) -> dict[str, dict]:
    found: dict[str, dict] = {}
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return found
    with handle:
        position = handle.seek(0, os.SEEK_END)
        carry = b""  # the start of a line whose beginning lies in the block before
        limit = max(0, position - scan_bytes)
        while position > limit and len(found) < len(wanted):
            start = max(limit, position - block)
            handle.seek(start)
            data = handle.read(position - start) + carry
            position = start
            lines = data.split(b"\n")
            carry = lines.pop(0) if position > 0 else b""
            for line in reversed(lines):
                try:
                    record = _parse(line)
                except (ValueError, RecursionError):
                    continue  # blank, corrupt or half-written
                if _take_matches(record, wanted, found):
                    break
    return found
