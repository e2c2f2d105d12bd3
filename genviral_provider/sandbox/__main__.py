"""Run the sandbox from the command line: ``python -m genviral_provider.sandbox --port 8080``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TypeVar

from genviral_provider.sandbox.dataset import Dataset
from genviral_provider.sandbox.faults import Faults
from genviral_provider.sandbox.server import SANDBOX_API_KEY, SandboxServer

Number = TypeVar("Number", int, float)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m genviral_provider.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on startup)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=100)
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, help="first day with rows (default: data ends today, UTC)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    parser.add_argument("--api-key", default=SANDBOX_API_KEY)
    parser.add_argument("--end-exclusive", action="store_true", help="exclude rows on the end date")
    parser.add_argument("--date-timezone", default="UTC", help="IANA zone in which start/end dates are read")
    parser.add_argument("--clamp-limit", action="store_true", help="clamp limit > 100 instead of answering 400")
    parser.add_argument(
        "--shuffle-ties",
        action="store_true",
        help="return rows with equal sort values in a new order on every request (seeded by --seed)",
    )
    parser.add_argument(
        "--deletions-per-request",
        type=_non_negative(int),
        default=0,
        help="delete this many of the rows each posts request selects, after answering it (seeded by --seed)",
    )
    parser.add_argument(
        "--max-deletions", type=_non_negative(int), default=100, help="the most rows deleted in all (default 100)"
    )
    parser.add_argument("--rate-limit", type=float, default=None, help="admitted requests per second (token bucket)")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of a random 500/502/503")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    cache = parser.add_argument_group("analytics cache", "how fresh the served rows are, and refreshing them")
    cache.add_argument(
        "--lag-hours",
        type=_non_negative(float),
        help="every target was last refreshed this many hours before the data's last day ends (default: live)",
    )
    cache.add_argument("--credits", type=_non_negative(int), default=0, help="credits for paid refreshes")
    cache.add_argument(
        "--refresh-seconds", type=_non_negative(float), default=1.0, help="seconds a refresh takes to complete"
    )
    cache.add_argument(
        "--scheduled-refresh-seconds",
        type=_positive(float),
        help="the platform refreshes every target by itself this often (default: never)",
    )
    cache.add_argument(
        "--omit-freshness-fields",
        action="store_true",
        help="leave last_refreshed_at and free_refresh_available out of target rows",
    )
    return parser.parse_args(argv)


def _non_negative(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    """Return an argparse type reading a ``kind`` number >= 0."""
    return _bounded(kind, lambda number: number >= 0, "a number >= 0")


def _positive(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    """Return an argparse type reading a ``kind`` number > 0."""
    return _bounded(kind, lambda number: number > 0, "a number > 0")


def _bounded(kind: Callable[[str], Number], allowed: Callable[[Number], bool], what: str) -> Callable[[str], Number]:
    def read(text: str) -> Number:
        try:
            number = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(number) and allowed(number)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return number

    return read


def data_end(args: argparse.Namespace) -> dt.datetime:
    """Return the end of the generated data: midnight (UTC) after its last day."""
    start = args.start or dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=args.days - 1)
    return dt.datetime.combine(start + dt.timedelta(days=args.days), dt.time(), tzinfo=dt.timezone.utc)


def build_server(args: argparse.Namespace) -> SandboxServer:
    """Build (not start) the sandbox the arguments describe."""
    end = data_end(args)
    start = end.date() - dt.timedelta(days=args.days)
    lag = None if args.lag_hours is None else end - dt.timedelta(hours=args.lag_hours)
    dataset = Dataset.generate(start=start, days=args.days, rows_per_day=args.rows_per_day, seed=args.seed)
    faults = Faults(
        latency=args.latency,
        rate_limit=args.rate_limit,
        error_rate=args.error_rate,
        error_seed=args.seed,
        deletions_per_request=args.deletions_per_request,
        max_deletions=args.max_deletions,
        deletion_seed=args.seed,
    )
    return SandboxServer(
        dataset=dataset,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        end_inclusive=not args.end_exclusive,
        date_timezone=args.date_timezone,
        clamp_limit=args.clamp_limit,
        shuffle_ties=args.shuffle_ties,
        tie_seed=args.seed,
        faults=faults,
        verbose=args.verbose,
        credits=args.credits,
        refresh_seconds=args.refresh_seconds,
        scheduled_refresh_seconds=args.scheduled_refresh_seconds,
        omit_freshness_fields=args.omit_freshness_fields,
        targets_refreshed_at=lag,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status."""
    sandbox = build_server(parse_args(argv))
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with sandbox:
        connection = {"conn_type": "genviral", "host": sandbox.url, "password": sandbox.api_key}
        print(f"Genviral sandbox listening on {sandbox.url}")
        print(f"API key: {sandbox.api_key}")
        print(f"AIRFLOW_CONN_GENVIRAL_DEFAULT='{json.dumps(connection)}'", flush=True)
        while not stopping.wait(timeout=0.5):
            pass  # A timed wait lets the main thread run signal handlers promptly on every platform.
    return 0


if __name__ == "__main__":
    sys.exit(main())
