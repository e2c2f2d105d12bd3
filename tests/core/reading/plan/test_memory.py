"""What a window's read keeps and says: its progress lines, at most every 30 s, with rows and pages so far."""

from __future__ import annotations

import logging
import re

import pytest

from genviral_provider.core.api.query import PostsFilter
from genviral_provider.core.reading.plan import WindowPlanReader
from genviral_provider.core.reading.progress import PROGRESS_EVERY
from genviral_provider.core.reading.run_window import RunWindow
from tests.core.reading.plan.fake_source import ListSource, SteppingClock, at, rows_between


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "so far" in record.getMessage()]


def test_a_long_read_logs_rows_and_pages_so_far_at_most_every_30_seconds(caplog: pytest.LogCaptureFixture) -> None:
    source = ListSource(rows_between(at(5), at(6), 2000))
    window = RunWindow(at(5), at(6), "test")
    clock = SteppingClock(PROGRESS_EVERY / 3 + 0.5)  # a line every third page
    log = logging.getLogger("test.progress")

    with caplog.at_level(logging.INFO, logger="test.progress"):
        rows = list(WindowPlanReader(source, window, PostsFilter(), log=log, clock=clock).rows())

    lines = _progress_lines(caplog)
    pages = len(source.requests)
    assert len(rows) == 2000 and pages >= 9
    assert len(lines) == pages // 3
    said = [
        re.fullmatch(rf"Reading {re.escape(window.describe())}: (\d+) row\(s\) and (\d+) page\(s\) so far\.", line)
        for line in lines
    ]
    counts = [(int(m.group(1)), int(m.group(2))) for m in said if m is not None]
    assert [pages_so_far for _, pages_so_far in counts] == [3 * n for n in range(1, len(lines) + 1)]
    assert [rows_so_far for rows_so_far, _ in counts] == sorted(rows_so_far for rows_so_far, _ in counts)
    assert 0 < counts[-1][0] <= 2000


def test_a_read_shorter_than_30_seconds_logs_no_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    source = ListSource(rows_between(at(5), at(6), 2000))
    log = logging.getLogger("test.progress")

    with caplog.at_level(logging.INFO, logger="test.progress"):
        window = RunWindow(at(5), at(6), "test")
        reader = WindowPlanReader(source, window, PostsFilter(), log=log, clock=SteppingClock(1))
        list(reader.rows())

    assert _progress_lines(caplog) == []
