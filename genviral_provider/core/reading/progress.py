"""What a read says while it goes and when it ends: a progress line at most every 30 s, and one closing line.

Both readers use it: :class:`~genviral_provider.core.reading.window.WindowReader` (``iter_posts``) and the window
plan (``iter_window``, the operator's). A read shorter than 30 s says only its closing line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from genviral_provider.core.log import Log

#: Seconds between two progress lines of one read: a long read shows it is alive, a short one is quiet.
PROGRESS_EVERY = 30.0


class ReadCounts(Protocol):
    """What a read counted so far."""

    @property
    def rows(self) -> int:
        """Rows yielded."""

    @property
    def pages(self) -> int:
        """Page requests sent."""


class Progress:
    """Say how a long read goes, and how it ended.

    :param log: where the lines go.
    :param what: the read, as the lines name it (a window, or the filter set asked).
    :param counts: the rows and pages so far, read at each line.
    :param estimate: the rows the API's ``totalCount`` announced for the read (``None``: no estimate yet).
    :param clock: seconds, monotonic (a test's fake clock).
    """

    def __init__(
        self,
        log: Log,
        what: str,
        counts: ReadCounts,
        *,
        estimate: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what
        self.counts = counts
        self.estimate = estimate
        self.clock = clock
        self.started = clock()
        self.due = self.started + PROGRESS_EVERY

    def tick(self) -> None:
        """Log the progress line if it is due (called once per page)."""
        now = self.clock()
        if now < self.due:
            return
        self.due = now + PROGRESS_EVERY
        total = self.estimate()
        of = "" if total is None else f", of about {total} row(s) the API counts"
        self.log.info(
            "Reading %s: %d row(s) and %d page(s) so far%s.", self.what, self.counts.rows, self.counts.pages, of
        )

    def finished(self, *, requests: int, kept: int, dropped: int, dropped_what: str, details: str = "") -> None:
        """Log the closing line: pages and requests, rows kept and dropped (``dropped_what`` says which), time.

        :param details: appended to the line (e.g. the API dates asked).
        """
        self.log.info(
            "Read %s: %d page(s) in %d request(s), %d row(s) kept, %d %s dropped, in %.1f s%s.",
            self.what,
            self.counts.pages,
            requests,
            kept,
            dropped,
            dropped_what,
            self.clock() - self.started,
            details,
        )
