"""Neighbours on one host: a report folder has one live run, locks do not follow TMPDIR, and only
dead runs' containers, work folders and ledger files are swept. No Docker needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import toy_manifest
from pytest_vdbench.runtime.owners import FolderInUse, claim_folder, release_folder, sweep_dead_files

HOST = socket.gethostname()


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process of this user that is alive (another run)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (a SIGKILLed run)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_report_folder_held_by_a_live_run_is_refused(tmp_path: Path, live_pid: int) -> None:
    (tmp_path / ".vdbench-run.json").write_text(json.dumps({"host": HOST, "pid": live_pid, "since": 0}))
    with pytest.raises(FolderInUse, match=rf"another run still alive \(pid {live_pid} on {HOST}"):
        claim_folder(tmp_path)


def test_a_dead_runs_claim_is_taken_over_and_released(tmp_path: Path, dead_pid: int) -> None:
    (tmp_path / ".vdbench-run.json").write_text(json.dumps({"host": HOST, "pid": dead_pid, "since": 0}))
    claim = claim_folder(tmp_path)
    assert json.loads(claim.read_text())["pid"] == os.getpid()
    release_folder(claim)
    assert not claim.exists()


def test_a_claim_from_another_host_is_not_assumed_dead(tmp_path: Path, dead_pid: int) -> None:
    (tmp_path / ".vdbench-run.json").write_text(json.dumps({"host": "elsewhere", "pid": dead_pid, "since": 0}))
    with pytest.raises(FolderInUse, match="on elsewhere"):
        claim_folder(tmp_path)


def test_two_runs_into_one_report_folder_the_second_is_refused(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], live_pid: int
) -> None:
    suite = write_suite(toy_manifest("neighbour"))
    report = pytester.path / "shared-report"
    report.mkdir()
    (report / ".vdbench-run.json").write_text(json.dumps({"host": HOST, "pid": live_pid, "since": 0}))
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "process", f"--vdbench-report={report}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--vdbench-report: {report} is the report folder of another run still alive (pid {live_pid}*"])
    assert not (report / "report.json").exists()


def test_build_locks_live_in_the_user_cache_not_under_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_vdbench.runtime.images import default_lock_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "one-tmpdir"))
    first = default_lock_dir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "another-tmpdir"))
    assert default_lock_dir() == first  # two runs with different TMPDIR share the lock
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_lock_dir() == tmp_path / "cache" / "vdbench" / "locks"


def test_sweep_removes_only_dead_runs_work_folders_and_ledgers(tmp_path: Path, live_pid: int, dead_pid: int) -> None:
    def folder(name: str, record: dict[str, Any] | None) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "logs.txt").write_text("kept for the user")
        if record is not None:
            (path / "owner.json").write_text(json.dumps(record))
        return path

    dead = folder("vdbench-dead", {"host": HOST, "pid": dead_pid})
    live = folder("vdbench-live", {"host": HOST, "pid": live_pid})
    kept = folder("vdbench-kept", None)  # a failing run's logs, kept on purpose: no owner any more
    remote = folder("vdbench-remote", {"host": "elsewhere", "pid": dead_pid})
    dead_ledger = tmp_path / "vdbench-ledger-a.json"
    dead_ledger.write_text(json.dumps({"r1": {"pid": dead_pid, "cpus": 2}}))
    live_ledger = tmp_path / "vdbench-ledger-b.json"
    live_ledger.write_text(json.dumps({"r1": {"pid": dead_pid}, "r2": {"pid": live_pid}}))
    removed = sweep_dead_files(tmp_path)
    assert sorted(removed) == sorted([dead, dead_ledger])
    assert live.exists() and kept.exists() and remote.exists() and live_ledger.exists()


def test_the_sweep_keeps_only_the_newest_failed_runs_logs_of_this_user(tmp_path: Path) -> None:
    def kept(name: str, since: float, uid: int | None = None) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "logs.txt").write_text("a failed run's log")
        (path / "kept.json").write_text(json.dumps({"host": HOST, "pid": 1, "since": since}))
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    old = [kept(f"vdbench-old{i}", since=100.0 + i) for i in range(3)]
    new = [kept(f"vdbench-new{i}", since=200.0 + i) for i in range(3)]
    other_user = kept("vdbench-theirs", since=1.0, uid=os.getuid() + 4242) if os.getuid() == 0 else None
    unmarked = tmp_path / "vdbench-pg"  # e.g. a PostgreSQL test cluster's data: never ours to sweep
    unmarked.mkdir()
    assert sorted(sweep_dead_files(tmp_path)) == sorted(old)
    assert all(p.exists() for p in new) and unmarked.exists()
    assert other_user is None or other_user.exists()


def test_the_xdist_controllers_sweep_removes_the_runs_ledger_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers share one ledger file and none of them removes it; the controller's end-of-run sweep
    does, engine or not (before, every xdist run left its ``vdbench-ledger-<run>.json`` in /tmp)."""
    from pytest_vdbench.runtime import docker as docker_runtime

    monkeypatch.setattr(docker_runtime, "docker_unavailable", lambda: "no engine in this test")
    tmp = Path(tempfile.gettempdir())  # the test's own (tests/conftest.py)
    ours, theirs = tmp / "vdbench-ledger-run1.json", tmp / "vdbench-ledger-run2.json"
    for path in (ours, theirs, Path(f"{ours}.lock")):
        path.write_text("{}")
    assert docker_runtime.sweep_testrun("run1") == 0
    assert not ours.exists() and not Path(f"{ours}.lock").exists()
    assert theirs.exists()
    theirs.unlink()


class _Container:
    def __init__(self, labels: dict[str, str], removed: list[str]) -> None:
        self.labels = labels
        self._removed = removed

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._removed.append(self.labels["org.vdbench.model"])


def test_clean_without_all_removes_only_containers_whose_owner_is_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], live_pid: int, dead_pid: int
) -> None:
    from pytest_vdbench.tools import cli

    removed: list[str] = []
    run = {"org.vdbench.run": "r"}
    containers = [
        _Container({**run, "org.vdbench.model": "dead", "org.vdbench.host": HOST, "org.vdbench.pid": str(dead_pid)}, removed),
        _Container({**run, "org.vdbench.model": "live", "org.vdbench.host": HOST, "org.vdbench.pid": str(live_pid)}, removed),
        _Container({**run, "org.vdbench.model": "remote", "org.vdbench.host": "other", "org.vdbench.pid": "1"}, removed),
        _Container({**run, "org.vdbench.model": "old"}, removed),  # before owner labels: unknown
    ]

    class Client:
        class containers:
            @staticmethod
            def list(all: bool = False, filters: dict[str, Any] | None = None) -> list[_Container]:
                return containers

        def close(self) -> None:
            return None

    monkeypatch.setattr(cli, "_client", lambda: Client())
    assert cli.main(["clean"]) == 0
    assert removed == ["dead"]
    assert "removed 1 vdbench container(s) of runs that are gone; kept 3" in capsys.readouterr().out
    assert cli.main(["clean", "--all"]) == 0
    assert sorted(removed) == ["dead", "dead", "live", "old", "remote"]
