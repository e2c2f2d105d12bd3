"""WindowPlanReader against the sandbox over HTTP, under every reading of the API's dates: exact rows, bounded cost."""

from __future__ import annotations

import datetime as dt
import http.server
import math
import random
import threading
import urllib.parse
from collections.abc import Callable, Iterator

import pytest
import requests

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import posts_filter
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.reading.plan import DateReading, WindowPlanReader, own_dates
from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
from genviral_provider.core.rows import published_at, row_key
from genviral_provider.sandbox import Dataset, SandboxServer

UTC = dt.timezone.utc
Factory = Callable[..., SandboxServer]
READINGS = {
    "utc-inclusive": (True, "UTC"),
    "utc-exclusive": (False, "UTC"),
    "utc+14-exclusive": (False, "Pacific/Kiritimati"),
    "utc+14-inclusive": (True, "Pacific/Kiritimati"),
    "utc-11-inclusive": (True, "Pacific/Pago_Pago"),
    "utc-11-exclusive": (False, "Pacific/Pago_Pago"),
}


def at(day: int, hour: float = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC) + dt.timedelta(hours=hour)


def window(start: dt.datetime, end: dt.datetime) -> RunWindow:
    return RunWindow(start, end, "test")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Sixteen days of 300 rows (rows at 00:00:00.000Z and 23:59:59.999Z of each), then an empty day."""
    return Dataset.generate(start=dt.date(2026, 1, 1), days=16, rows_per_day=300, seed=5)


@pytest.fixture
def read(genviral_sandbox_factory: Factory) -> Iterator[Callable[..., tuple[list[str], int, WindowPlanReader]]]:
    """Return a function reading a window from a sandbox with a given reading: (kept ids, requests, reader)."""
    clients: list[GenviralClient] = []

    def run(
        data: Dataset, reading: tuple[bool, str], span: RunWindow, *, guess: DateReading | None = None, **options: bool
    ) -> tuple[list[str], int, WindowPlanReader]:
        server = genviral_sandbox_factory(dataset=data, end_inclusive=reading[0], date_timezone=reading[1], **options)
        settings = ClientSettings.from_connection(
            conn_id="test", host=server.url, port=None, password=server.api_key, extra={"max_retry_wait": 2}
        )
        client = GenviralClient(settings)
        clients.append(client)
        reader = WindowPlanReader(client, span, posts_filter(), reading=guess)
        kept = [row_key(row) for row in WindowFilter(span).rows(reader.rows())]
        assert reader.stats.requests == server.stats.total
        return kept, server.stats.total, reader

    yield run
    for client in clients:
        client.close()


def expected(data: Dataset, span: RunWindow) -> set[str]:
    return {row_key(r) for r in data.rows if (t := published_at(r)) is not None and span.contains(t)}


def bound(rows: int) -> float:
    return 1.25 * max(1, math.ceil(rows / 100)) + 3


def assert_exact(kept: list[str], data: Dataset, span: RunWindow) -> None:
    assert len(kept) == len(set(kept)), "a row was kept twice"
    want = expected(data, span)
    assert set(kept) == want, f"missing {len(want - set(kept))}, extra {len(set(kept) - want)}"


WINDOWS = {
    "utc-day": (at(5), at(6)),
    "two-days": (at(5), at(7)),
    "off-midnight-day": (at(5, 6.5), at(6, 6.5)),
    "hour": (at(7, 13), at(7, 14)),
    "first-hour": (at(7, 0), at(7, 1)),
    "last-hour": (at(7, 23), at(8, 0)),
    "quarter-hour-at-noon": (at(9, 11.75), at(9, 12)),
    "week": (at(3), at(10)),
}


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
@pytest.mark.parametrize("bounds", list(WINDOWS.values()), ids=list(WINDOWS))
def test_every_window_is_exact_and_costs_its_rows_pages_plus_three(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
    dataset: Dataset,
    reading: tuple[bool, str],
    bounds: tuple[dt.datetime, dt.datetime],
) -> None:
    span = window(*bounds)
    kept, requests, _ = read(dataset, reading, span)
    assert_exact(kept, dataset, span)
    assert requests <= bound(len(set(kept))), f"{requests} requests for {len(set(kept))} rows"


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_a_wrong_guess_of_the_reading_costs_requests_never_rows(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], dataset: Dataset, reading: tuple[bool, str]
) -> None:
    span = window(at(5, 3), at(6, 3))
    for guess in (True, False):
        kept, _, _ = read(dataset, reading, span, guess=DateReading(inclusive=guess))
        assert_exact(kept, dataset, span)


def test_the_reading_learned_in_one_window_is_kept_for_the_next(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
) -> None:
    data = Dataset.empty()
    data.insert(
        [{"publishedAt": (at(day) + dt.timedelta(hours=h)).isoformat()} for day in range(3, 9) for h in (3, 9, 20)]
    )
    learned = DateReading()
    kept, _, first = read(data, READINGS["utc-inclusive"], window(at(5), at(6)), guess=learned)
    assert_exact(kept, data, window(at(5), at(6)))
    assert learned.inclusive is True and first.stats.inclusive_proven
    kept, _, second = read(data, READINGS["utc-inclusive"], window(at(6), at(7)), guess=learned)
    assert_exact(kept, data, window(at(6), at(7)))
    assert second.stats.dates_read[0] == (dt.date(2026, 1, 6), dt.date(2026, 1, 6))  # asked as (d, d) at once


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_rows_tied_on_the_window_boundaries_are_kept_exactly_once(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], reading: tuple[bool, str]
) -> None:
    data = Dataset.generate(start=dt.date(2026, 1, 1), days=10, rows_per_day=150, seed=9)
    for instant in (at(5), at(6) - dt.timedelta(milliseconds=1), at(6)):
        data.insert([{"publishedAt": instant.isoformat()} for _ in range(40)])  # more ties than pages overlap
    span = window(at(5), at(6))
    kept, _, _ = read(data, reading, span, shuffle_ties=True)
    assert_exact(kept, data, span)


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_empty_neighbouring_days_and_an_empty_window(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], reading: tuple[bool, str]
) -> None:
    data = Dataset.generate(
        start=dt.date(2026, 1, 1),
        days=12,
        rows_per_day=200,
        seed=4,
        day_counts={dt.date(2026, 1, d): 0 for d in (4, 6, 8, 9, 10)},
    )
    for bounds in ((at(5), at(6)), (at(9), at(10)), (at(7, 20), at(8, 4))):
        span = window(*bounds)
        kept, requests, _ = read(data, reading, span)
        assert_exact(kept, data, span)
        assert requests <= bound(len(kept))


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_a_day_beyond_the_offset_cap_is_read_per_platform_at_the_cost_of_its_rows(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], reading: tuple[bool, str]
) -> None:
    data = Dataset.generate(
        start=dt.date(2026, 1, 1), days=5, rows_per_day=50, seed=2, day_counts={dt.date(2026, 1, 3): 12_000}
    )
    span = window(at(3), at(4))
    kept, requests, reader = read(data, reading, span)
    assert_exact(kept, data, span)
    assert requests <= bound(len(kept)), f"{requests} requests for {len(kept)} rows"
    if reading[1] == "UTC":  # the window's date holds all 12,000 rows (in other zones, less than 10,100)
        assert {part.filter.platforms for part in reader.stats.parts} >= {("tiktok",), ("instagram",), ("youtube",)}


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
@pytest.mark.parametrize(
    "bounds",
    [(at(2), at(5)), (at(2, 6), at(5, 6)), (at(1, 13), at(2, 13))],
    ids=["3-days", "3-days-off-midnight", "day"],
)
def test_windows_whose_dates_exceed_the_offset_cap_cost_their_rows_pages_plus_three(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
    reading: tuple[bool, str],
    bounds: tuple[dt.datetime, dt.datetime],
) -> None:
    # 6,000 rows a day: the window's dates, or a date read with its `end` date included, hold more than 10,100.
    data = Dataset.generate(start=dt.date(2026, 1, 1), days=6, rows_per_day=6_000, seed=8)
    span = window(*bounds)
    kept, requests, _ = read(data, reading, span)
    assert_exact(kept, data, span)
    assert requests <= bound(len(kept)), f"{requests} requests for {len(kept)} rows"


def test_the_dates_read_are_recorded_in_order_and_only_where_needed(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], dataset: Dataset
) -> None:
    # The window's own date holds a row before 00:30 (at 00:00): the date before cannot hold window rows.
    _, _, reader = read(dataset, READINGS["utc-exclusive"], window(at(5, 0.5), at(6)))
    assert reader.stats.api_dates_read() == [
        {"start": "2026-01-05", "end": "2026-01-06"},
        {"start": "2026-01-06", "end": "2026-01-07"},
    ]


def test_own_dates_are_the_utc_dates_touched_by_the_window() -> None:
    assert own_dates(window(at(5), at(6))) == (dt.date(2026, 1, 5), dt.date(2026, 1, 6))
    assert own_dates(window(at(5, 23), at(6, 1))) == (dt.date(2026, 1, 5), dt.date(2026, 1, 7))


class _RefusingSingleDates(http.server.BaseHTTPRequestHandler):
    """A proxy to a sandbox that answers 400 to ``start == end``, as an API reading `end` exclusively might."""

    upstream = ""

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if query.get("start") and query.get("start") == query.get("end"):
            status, body = 400, b'{"ok":false,"code":400,"message":"Invalid start/end","error_code":"invalid_query"}'
        else:
            answer = requests.get(self.upstream + self.path, headers={"Authorization": self.headers["Authorization"]})
            status, body = answer.status_code, answer.content
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_api_refusing_single_date_queries_is_read_exactly(
    genviral_sandbox_factory: Factory, dataset: Dataset
) -> None:
    sandbox = genviral_sandbox_factory(dataset=dataset, end_inclusive=False, date_timezone="Pacific/Pago_Pago")
    handler = type("Handler", (_RefusingSingleDates,), {"upstream": sandbox.url})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            settings = ClientSettings.from_connection(
                conn_id="test",
                host=f"http://127.0.0.1:{proxy.server_address[1]}",
                port=None,
                password=sandbox.api_key,
                extra={"max_retries": 0},
            )
            client = GenviralClient(settings)
            guess = DateReading(inclusive=True)  # wrong: the first (d, d) query is refused
            span = window(at(5), at(6))
            reader = WindowPlanReader(client, span, posts_filter(), reading=guess)
            kept = [row_key(row) for row in WindowFilter(span).rows(reader.rows())]
            client.close()
        finally:
            proxy.shutdown()
    assert_exact(kept, dataset, span)
    assert guess.inclusive is False and not reader.stats.inclusive_proven


@pytest.fixture(scope="module")
def busy() -> Dataset:
    """Five days of 5,000 rows: an hour holds about 200, two or three pages."""
    return Dataset.generate(start=dt.date(2026, 1, 1), days=5, rows_per_day=5_000, seed=6)


BUSY_HOURS = {
    "first-hour": (at(3, 0), at(3, 1)),
    "utc+14-date-edge": (at(3, 10), at(3, 11)),  # the API date ends at 10:00 UTC when read in UTC+14
    "utc-11-date-edge": (at(3, 11), at(3, 12)),  # and begins at 11:00 UTC when read in UTC-11
    "afternoon": (at(3, 15), at(3, 16)),
    "last-hour": (at(3, 23), at(4, 0)),
    "quarter-hour": (at(3, 18.25), at(3, 18.5)),
}


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
@pytest.mark.parametrize("bounds", list(BUSY_HOURS.values()), ids=list(BUSY_HOURS))
def test_an_hour_of_a_busy_day_costs_its_rows_pages_plus_three(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
    busy: Dataset,
    reading: tuple[bool, str],
    bounds: tuple[dt.datetime, dt.datetime],
) -> None:
    span = window(*bounds)
    kept, requests, _ = read(busy, reading, span)
    assert_exact(kept, busy, span)
    assert requests <= bound(len(kept)), f"{requests} requests for {len(kept)} rows"


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_uneven_days_cost_requests_never_rows(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]], reading: tuple[bool, str]
) -> None:
    data = Dataset.uneven(start=dt.date(2026, 1, 1), days=6, rows_per_day=4_000, seed=reading[0] + len(reading[1]))
    for bounds in ((at(3, 8.25), at(3, 8.5)), (at(3, 23), at(4, 0)), (at(4, 0.75), at(4, 3.75)), (at(2, 13), at(5))):
        span = window(*bounds)
        kept, requests, _ = read(data, reading, span)
        assert_exact(kept, data, span)
        assert requests <= 2.5 * bound(len(kept)), f"{requests} requests for {len(kept)} rows"


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_a_window_in_a_gap_at_the_api_dates_edge_is_read_exactly(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
    busy: Dataset,
    reading: tuple[bool, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No rows from 09:00 to 12:00 UTC: the date after cannot show by its own rows that it begins by the window,
    # so the window's own date must be read from its far end.
    data = Dataset.empty(seed=1)
    kept_rows = [row for row in busy.rows if not at(3, 9) <= published_at(row) < at(3, 12)]  # type: ignore[operator]
    data.insert({"publishedAt": row["publishedAt"]} for row in kept_rows)
    data.insert([{"publishedAt": (at(3, 10) + dt.timedelta(minutes=m)).isoformat()} for m in (5, 30, 55)])
    for bounds in ((at(3, 10), at(3, 11)), (at(3, 9.5), at(3, 11.5))):
        span = window(*bounds)
        kept, requests, _ = read(data, reading, span)
        assert_exact(kept, data, span)
        assert requests <= 8
    if reading == READINGS["utc+14-exclusive"]:  # the date after begins at 10:00 UTC, its first row at 10:05
        assert "does not show it begins by the window" in caplog.text


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_a_window_past_the_offset_cap_of_one_target_is_read_from_both_ends(
    read: Callable[..., tuple[list[str], int, WindowPlanReader]],
    reading: tuple[bool, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One analytics target posts 15,000 times a day: its date cannot be split, and ascending offsets stop at
    # 10,100 rows, short of the window's end; the rest is read from the date's end, descending.
    rng = random.Random(7)
    data = Dataset.empty(targets_per_platform=1, seed=7)
    data.insert(
        {"platform": "tiktok", "publishedAt": (at(day) + dt.timedelta(seconds=rng.uniform(0, 86_400))).isoformat()}
        for day in (2, 3, 4)
        for _ in range(15_000)
    )
    span = window(at(3, 10), at(3, 22))
    kept, requests, _ = read(data, reading, span)
    assert_exact(kept, data, span)
    assert requests <= bound(len(kept)), f"{requests} requests for {len(kept)} rows"
    if reading[1] == "UTC":  # the window's date starts at midnight UTC: 10:00 to 22:00 is rows 6,250 to 13,750
        assert "from its other end" in caplog.text
