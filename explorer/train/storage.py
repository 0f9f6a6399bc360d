"""What the runs take on disk, per owner: a session's quota, pruning old runs, and runs as one zip.

A course server runs all semester: runs pile up. Each student's session has a quota
($RESNET_EXPLORER_SESSION_QUOTA_MB, 200 MB by default: about seven Fig. 6 presets of 29 MB); the
instructor sees what each owner's runs take and can delete a student's runs older than N days, and
so can ``python -m explorer runs --prune-older-than DAYS``. A student takes their runs home as one
zip (``runs export``), which opens again with ``runs import`` or by unzipping it into a runs folder.

An imported zip is checked before anything is written: no path outside the runs folder (``..``,
absolute), no links, every run folder with its config.json, no folder that exists already, and
sizes within bounds, declared and real (a zip bomb is refused by both).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from explorer.i18n import Translate, untranslated
from explorer.train.store import ACTIVE_STATES, Run, free_bytes, list_runs

QUOTA_ENV = "RESNET_EXPLORER_SESSION_QUOTA_MB"
DEFAULT_QUOTA_MB = 200.0
MAX_IMPORT_BYTES = 4 << 30  # uncompressed, in all: a ResNet-1202 run is about 230 MB
MAX_COMPRESSION_RATIO = 200  # a run's files (float tensors, JSON) compress far less; a bomb far more
SECONDS_PER_DAY = 86_400


def positive_number(text: str, what: str) -> float:
    """``text`` as a number above zero, or a one-line ValueError naming ``what``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number above zero, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{what} must be a number above zero, got {text!r}")
    return value


def session_quota_bytes() -> int:
    """A student's session's quota, from $RESNET_EXPLORER_SESSION_QUOTA_MB (MB, default 200)."""
    text = os.environ.get(QUOTA_ENV)
    megabytes = DEFAULT_QUOTA_MB if text is None or not text.strip() else positive_number(text, f"${QUOTA_ENV}")
    return int(megabytes * 2**20)


def folder_bytes(path: str | Path) -> int:
    """The bytes of the files under ``path`` (links not followed); 0 for a folder gone meanwhile."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def usage_by_owner(runs_dir: str | Path) -> dict[str | None, dict]:
    """Owner (None: shared) -> {"runs": count, "bytes": total}."""
    usage: dict[str | None, dict] = {}
    for run in list_runs(runs_dir):
        entry = usage.setdefault(run.status().get("owner"), {"runs": 0, "bytes": 0})
        entry["runs"] += 1
        entry["bytes"] += folder_bytes(run.path)
    return usage


def owner_bytes(runs_dir: str | Path, owner: str) -> int:
    return sum(folder_bytes(run.path) for run in list_runs(runs_dir) if run.status().get("owner") == owner)


def check_quota(runs_dir: str | Path, owner: str | None, needed: int, quota: int | None = None,
                _: Translate = untranslated) -> None:
    """Refuse runs that would take a student's session past its quota (shared runs have none);
    ``_``: the page's translation of the refusal."""
    if owner is None:
        return
    quota = session_quota_bytes() if quota is None else quota
    used = owner_bytes(runs_dir, owner)
    if used + needed > quota:
        raise ValueError(_("your runs take {used:,.1f} MB of your {quota:,.0f} MB, and these need about "
                           "{needed:,.1f} MB more: delete some of your old runs on the Runs page (download them "
                           "first as a zip to keep them)").format(used=used / 2**20, quota=quota / 2**20,
                                                                  needed=needed / 2**20))


def run_age_seconds(run: Run, now: float | None = None) -> float:
    """Since the run last changed: its status's time, else its folder's."""
    updated = run.status().get("updated")
    if not isinstance(updated, (int, float)):
        try:
            updated = run.path.stat().st_mtime
        except OSError:
            updated = time.time()
    return (now or time.time()) - updated


def prunable(runs_dir: str | Path, older_than_days: float, owner: str | None = "") -> list[Run]:
    """Runs not changed for ``older_than_days`` days and not training, of ``owner`` (a session's key;
    None: the shared runs; "": every student's, never the shared ones)."""
    days = positive_number(older_than_days, "the number of days")
    chosen = []
    for run in list_runs(runs_dir):
        status = run.shown_status()
        whose = status.get("owner")
        if status.get("state") in ACTIVE_STATES or run_age_seconds(run) < days * SECONDS_PER_DAY:
            continue
        if (owner == "" and whose is not None) or (owner != "" and whose == owner):
            chosen.append(run)
    return chosen


def prune(runs: list[Run]) -> int:
    """Delete these runs; the bytes freed."""
    freed = 0
    for run in runs:
        freed += folder_bytes(run.path)
        run.delete()
    return freed


def export_runs(run_dirs: list[str | Path], out) -> int:
    """Write these run folders into one zip (each under its folder's name); the number of files.
    ``out``: a path or a writable binary file."""
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for run_dir in run_dirs:
            run_dir = Path(run_dir)
            if not (run_dir / "config.json").is_file():
                raise ValueError(f"{run_dir} is not a run folder (it has no config.json)")
            for path in sorted(run_dir.rglob("*")):
                if path.is_file() and not path.is_symlink() and ".tmp" not in path.name:
                    archive.write(path, PurePosixPath(run_dir.name, *path.relative_to(run_dir).parts).as_posix())
                    count += 1
    return count


def _checked_members(archive: zipfile.ZipFile, runs_dir: Path) -> dict[str, list[zipfile.ZipInfo]]:
    """Run folder name -> its members, or a one-line ValueError for anything unsafe or not a run."""
    folders: dict[str, list[zipfile.ZipInfo]] = {}
    declared = 0
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ":" in (parts[0] if parts else "") or ".." in parts or "\\" in name:
            raise ValueError(f"refused: {name!r} would be written outside the runs folder; nothing was written")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"refused: {name!r} is a link; nothing was written")
        if info.is_dir():
            continue
        if len(parts) < 2:
            raise ValueError(f"refused: {name!r} is not inside a run folder; nothing was written")
        declared += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise ValueError(f"refused: {name!r} would expand {info.file_size / info.compress_size:,.0f} times "
                             "(a zip bomb?); nothing was written")
        folders.setdefault(parts[0], []).append(info)
    if not folders:
        raise ValueError("refused: the zip holds no run folder; nothing was written")
    if declared > MAX_IMPORT_BYTES:
        raise ValueError(f"refused: the zip would expand to {declared / 2**30:,.1f} GB, more than the "
                         f"{MAX_IMPORT_BYTES / 2**30:,.0f} GB allowed; nothing was written")
    free = free_bytes(runs_dir)
    if free is not None and declared > free:
        raise ValueError(f"refused: the zip would expand to {declared / 2**20:,.1f} MB and the disk holding "
                         f"{runs_dir} has {free / 2**20:,.1f} MB free; nothing was written")
    for folder, members in folders.items():
        if not any(info.filename == f"{folder}/config.json" for info in members):
            raise ValueError(f"refused: {folder}/ in the zip is not a run folder (no config.json); nothing was "
                             "written")
        if (runs_dir / folder).exists():
            raise ValueError(f"refused: {runs_dir / folder} exists already; nothing was written")
    return folders


def import_runs(source, runs_dir: str | Path, owner: str | None = None) -> list[Path]:
    """Unpack a zip of run folders (``export_runs``'s) into ``runs_dir``, checked first; with
    ``owner``, the runs become that session's. The run folders made."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"refused: not a zip file ({error}); nothing was written") from None
    with archive:
        folders = _checked_members(archive, runs_dir)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=runs_dir))
        try:
            for members in folders.values():
                for info in members:
                    target = staging / info.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    written = 0
                    with archive.open(info) as data, open(target, "wb") as out:
                        while chunk := data.read(1 << 20):
                            written += len(chunk)
                            if written > info.file_size:  # more than it declared: a crafted entry
                                raise ValueError(f"refused: {info.filename!r} holds more than it declares; nothing "
                                                 "was written")
                            out.write(chunk)
            made = []
            for folder in folders:
                run = Run(staging / folder)
                if owner is not None and (run.path / "status.json").exists():
                    run.update_status(owner=owner)
                os.replace(staging / folder, runs_dir / folder)
                made.append(runs_dir / folder)
            return made
        finally:
            shutil.rmtree(staging, ignore_errors=True)
