"""What a read says: a progress line at most every 30 s (rows and pages so far, and for ``iter_posts``'s reader the
rows ``totalCount`` announced), and one closing line (pages, requests, rows kept and dropped, elapsed) on both paths.

Every clock here is a fake one that moves on each time it is read: nothing sleeps.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pytest

from genviral_provider.core.api.query import PostsFilter
from genviral_provider.core.reading.plan import WindowPlanReader
from genviral_provider.core.reading.progress import PROGRESS_EVERY, Progress
from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
from genviral_provider.core.reading.window import PAGE_OVERLAP, WindowReader
from tests.core.reading.plan.fake_source import ListSource, SteppingClock, at, rows_between

LOGGER = "test.progress"


@dataclass
class _Counts:
    rows: int = 0
    pages: int = 0


def _lines(caplog: pytest.LogCaptureFixture, pattern: str) -> list[re.Match[str]]:
    said = (re.fullmatch(pattern, record.getMessage()) for record in caplog.records if record.name == LOGGER)
    return [match for match in said if match is not None]


def test_progress_says_nothing_before_30_seconds_then_at_most_every_30(caplog: pytest.LogCaptureFixture) -> None:
    clock, counts = SteppingClock(10.0), _Counts()
    progress = Progress(logging.getLogger(LOGGER), "the window", counts, clock=clock)  # started at 10
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for page in range(1, 10):  # ticks at 20, 30, ..., 100
            counts.rows, counts.pages = 100 * page, page
            progress.tick()
    said = _lines(caplog, r"Reading the window: (\d+) row\(s\) and (\d+) page\(s\) so far\.")
    assert [(int(m.group(1)), int(m.group(2))) for m in said] == [(300, 3), (600, 6), (900, 9)]  # at 40, 70, 100


def test_progress_names_the_estimate_when_there_is_one(caplog: pytest.LogCaptureFixture) -> None:
    counts = _Counts(rows=250, pages=3)
    clock = SteppingClock(PROGRESS_EVERY)
    progress = Progress(logging.getLogger(LOGGER), "w", counts, estimate=lambda: 5000, clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.tick()
    assert [m.group(0) for m in _lines(caplog, r"Reading w: .*")] == [
        "Reading w: 250 row(s) and 3 page(s) so far, of about 5000 row(s) the API counts."
    ]


def test_the_closing_line_says_pages_requests_rows_and_seconds(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(logging.getLogger(LOGGER), "w", _Counts(rows=12, pages=4), clock=SteppingClock(2.5))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.finished(requests=5, kept=10, dropped=2, dropped_what="outside the window", details=", over X")
    assert [m.group(0) for m in _lines(caplog, r"Read w: .*")] == [
        "Read w: 4 page(s) in 5 request(s), 10 row(s) kept, 2 outside the window dropped, in 2.5 s, over X."
    ]


def test_iter_posts_reader_logs_progress_with_the_total_count_and_a_closing_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = ListSource(rows_between(at(5), at(6), 2000))
    clock = SteppingClock(PROGRESS_EVERY / 3 + 0.5)  # a progress line every third page
    reader = WindowReader(source, log=logging.getLogger(LOGGER), clock=clock)
    window = PostsFilter(start=at(5).date(), end=at(6).date())

    with caplog.at_level(logging.INFO, logger=LOGGER):
        rows = list(reader.rows(window))

    pages = len(source.requests)
    progress = _lines(
        caplog,
        r"Reading 2026-01-05\.\.2026-01-06: (\d+) row\(s\) and (\d+) page\(s\) so far, "
        r"of about 2000 row\(s\) the API counts\.",
    )
    assert len(rows) == 2000 and pages >= 21
    assert [int(m.group(2)) for m in progress] == [3 * n for n in range(1, pages // 3 + 1)]
    assert [int(m.group(1)) for m in progress] == sorted(int(m.group(1)) for m in progress)
    closing = _lines(
        caplog,
        r"Read 2026-01-05\.\.2026-01-06: (\d+) page\(s\) in (\d+) request\(s\), (\d+) row\(s\) "
        r"kept, (\d+) repeated row\(s\) dropped, in ([\d.]+) s\.",
    )
    overlaps = PAGE_OVERLAP * (pages - 1)  # the rows consecutive pages share, read twice and dropped once
    assert [m.groups()[:4] for m in closing] == [(str(pages), str(pages), "2000", str(overlaps))]
    assert float(closing[0].group(5)) == pytest.approx(clock.now - clock.step, abs=0.06)


def test_the_window_plan_s_closing_line_counts_what_the_window_filter_keeps_and_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = ListSource(rows_between(at(4), at(8), 1600))
    window = RunWindow(at(5, 6), at(6, 6), "test")
    clock = SteppingClock(0.25)
    reader = WindowPlanReader(source, window, PostsFilter(), log=logging.getLogger(LOGGER), clock=clock)
    kept = WindowFilter(window)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        rows = list(kept.rows(reader.rows()))

    closing = _lines(
        caplog,
        rf"Read {re.escape(window.describe())}: (\d+) page\(s\) in (\d+) request\(s\), (\d+) "
        r"row\(s\) kept, (\d+) outside the window dropped, in ([\d.]+) s, over API dates (.+)\.",
    )
    assert len(closing) == 1
    pages, requests, said_kept, said_outside = (int(number) for number in closing[0].groups()[:4])
    assert (pages, requests) == (len(source.requests), reader.stats.requests)
    assert (said_kept, said_outside) == (kept.kept, kept.outside) == (len(rows), kept.outside)
    assert kept.outside > 0 and kept.kept == 400
    assert float(closing[0].group(5)) == pytest.approx(clock.now - clock.step, abs=0.06)
    assert closing[0].group(6) == ", ".join(f"{start}..{end}" for start, end in reader.stats.dates_read)
