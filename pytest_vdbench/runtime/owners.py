"""Who owns what on a shared host: runs record host + pid, so neighbours touch only what is dead.

* a report folder is claimed by one live run at a time (``claim_folder``);
* containers carry ``org.vdbench.host`` / ``org.vdbench.pid`` labels; ``vdbench clean`` and a new
  run remove only those whose owning process is gone (``owner_gone``);
* work folders carry an ``owner.json`` until their run ends; ledger files hold their owners' pids;
  a new run removes a SIGKILLed run's leftovers of both (``sweep_dead_files``);
* a failed run's logs, kept in the temporary folder for the user, carry a ``kept.json``: the sweep
  keeps the newest ``KEEP_FAILED_LOGS`` of this user's and removes older ones (pytest keeps its
  last 3 base temporary folders the same way).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "KEEP_FAILED_LOGS",
    "OWNER_FILE",
    "FolderInUse",
    "claim_folder",
    "entry_gone",
    "mark_kept",
    "owner",
    "owner_gone",
    "read_record",
    "release_folder",
    "sweep_dead_files",
]

OWNER_FILE = "owner.json"
KEPT_FILE = "kept.json"
CLAIM_FILE = ".vdbench-run.json"
#: how many failed runs' kept log folders of one user survive the next run's sweep
KEEP_FAILED_LOGS = 3


class FolderInUse(Exception):
    """Another live run claimed the folder; the message names it (host, pid, since) and the way out."""


def owner() -> dict[str, Any]:
    """This process as an owner record."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def owner_gone(record: Mapping[str, Any]) -> bool:
    """True only when the owner ran on this host and its process no longer exists.

    An owner on another host (a shared remote engine) or without a pid is never called gone.
    """
    try:
        pid = int(record.get("pid", 0))
    except (TypeError, ValueError):
        return False
    return bool(pid) and record.get("host") == socket.gethostname() and not _pid_alive(pid)


def entry_gone(entry: Mapping[str, Any]) -> bool:
    """A ledger entry (it holds a pid, no host: ledgers are local) whose process is gone."""
    return owner_gone({"host": socket.gethostname(), **entry})


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object file (owner, claim, kept mark, ledger); None when missing, torn or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_folder(folder: Path) -> Path:
    """Claim ``folder`` for this run (created if needed); FolderInUse when a live run holds it.

    A claim left by a dead run on this host is taken over. Returns the claim file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    claim = folder / CLAIM_FILE
    for _ in range(3):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_record(claim)
            if held is not None and int(held.get("pid", -1)) == os.getpid() and held.get("host") == socket.gethostname():
                return claim
            if held is None or owner_gone(held):
                with contextlib.suppress(FileNotFoundError):
                    claim.unlink()  # a dead run's (or a torn) claim
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("since", 0))))
            raise FolderInUse(
                f"{folder} is the report folder of another run still alive (pid {held.get('pid')} on "
                f"{held.get('host')}, since {since}): its results would be overwritten; give another "
                f"--vdbench-report folder, or wait for it (if that run is gone, delete {claim})"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(owner(), fh)
        return claim
    raise FolderInUse(f"{folder}: could not claim {claim} (another run keeps taking it)")


def release_folder(claim: Path) -> None:
    """Give a claim back (only our own)."""
    held = read_record(claim)
    if held is not None and int(held.get("pid", -1)) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            claim.unlink()


def mark_kept(folder: Path) -> None:
    """Mark ``folder`` as a finished, failed run's logs kept for the user (the sweep's retention)."""
    (folder / KEPT_FILE).write_text(json.dumps(owner()))  # its ``since``: when the logs were kept


def _kept_since(folder: Path) -> float:
    record = read_record(folder / KEPT_FILE) or {}
    try:
        return float(record.get("since", 0.0))
    except (TypeError, ValueError):
        return 0.0


def sweep_dead_files(tmp: Path) -> list[Path]:
    """Remove dead runs' work folders (``vdbench-*`` with an owner.json whose owner is gone), this
    user's kept failed-run logs past the newest ``KEEP_FAILED_LOGS``, and ledger files whose every
    entry belongs to a dead process; returns what was removed."""
    removed: list[Path] = []
    kept: list[Path] = []
    for folder in tmp.glob("vdbench-*"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        record = read_record(folder / OWNER_FILE)
        if record is not None and owner_gone(record):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        elif record is None and (folder / KEPT_FILE).is_file() and folder.stat().st_uid == os.getuid():
            kept.append(folder)
    for folder in sorted(kept, key=_kept_since, reverse=True)[KEEP_FAILED_LOGS:]:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    for ledger in tmp.glob("vdbench-ledger-*.json"):
        entries = read_record(ledger)
        if entries and all(entry_gone(e) for e in entries.values()):
            ledger.unlink(missing_ok=True)
            removed.append(ledger)
    return removed
