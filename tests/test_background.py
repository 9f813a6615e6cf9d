"""fangpin.background: the roster's read started ahead of its run, and taken over by it once."""
from __future__ import annotations

import threading

import pytest

from fangpin import background, reading


@pytest.fixture
def reads(monkeypatch):
    """`reading.read_roster` replaced by a recorder: each call's (folder, month) and thread; returns 'tables of X'."""
    calls: list[tuple[str, str, str]] = []

    def read_roster(data_dir, month):
        calls.append((data_dir.name, month, threading.current_thread().name))
        return f"tables of {data_dir.name} {month}"

    monkeypatch.setattr(reading, "read_roster", read_roster)
    yield calls
    background._ahead.clear()


def test_a_read_started_ahead_is_handed_over_once_then_a_new_read_starts(tmp_path, reads):
    background.read_roster_ahead(tmp_path / "county", "2026-10")
    background.read_roster_ahead(tmp_path / "county", "2026-10")  # asked twice: still one read
    taken = background.roster_read(tmp_path / "county", "2026-10")
    assert taken.result(10) == "tables of county 2026-10"
    assert reads == [("county", "2026-10", background.ROSTER_READ_THREAD)]
    again = background.roster_read(tmp_path / "county", "2026-10")
    assert again is not taken and again.result(10) == "tables of county 2026-10" and len(reads) == 2


def test_a_read_ahead_for_another_month_or_folder_is_not_taken(tmp_path, reads):
    background.read_roster_ahead(tmp_path / "county", "2026-09")
    background.read_roster_ahead(tmp_path / "other", "2026-10")
    assert background.roster_read(tmp_path / "county", "2026-10").result(10) == "tables of county 2026-10"
    assert len(reads) == 3 and len(background._ahead) == 2


def test_then_runs_once_the_read_is_over_also_when_it_was_over_before_being_taken(tmp_path, reads):
    background.read_roster_ahead(tmp_path / "county", "2026-10")
    while not background._ahead[(str((tmp_path / "county").resolve()), "2026-10")].done():
        threading.Event().wait(0.01)
    over: list[str] = []
    future = background.roster_read(tmp_path / "county", "2026-10", then=lambda: over.append("over"))
    assert over == ["over"] and future.done()


def test_an_error_of_the_read_reaches_whoever_takes_it(tmp_path, monkeypatch):
    def failing(data_dir, month):
        raise OSError("磁盘读取失败")

    monkeypatch.setattr(reading, "read_roster", failing)
    background.read_roster_ahead(tmp_path, "2026-10")
    with pytest.raises(OSError, match="磁盘读取失败"):
        background.roster_read(tmp_path, "2026-10").result(10)
