"""A deterministic, generated set of analytics rows, and the query evaluation the sandbox serves from it.

Rows have exactly the documented shape of ``GET /analytics/summary/posts``. Their order structures
(one sorted list per sort field and direction, built on first use and kept up to date on insert) make a
query cost a bisect plus the page, so a dataset of 100,000+ rows answers in a few milliseconds.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import gc
import math
import random
import threading
from bisect import bisect_left, insort_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

PLATFORMS = ("tiktok", "instagram", "youtube")
DATE_RANGE_PRESETS = ("14d", "30d", "90d", "1y", "all")
SORT_FIELDS = ("published_at", "views", "likes", "comments", "shares")
SORT_ORDERS = ("asc", "desc")
#: Keys an older version of the API leaves out of every row.
LEGACY_OMITTED_KEYS = ("analyticsId", "genviralPostId", "externalId")

_RANGE_DAYS = {"14d": 14, "30d": 30, "90d": 90, "1y": 365}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_DAY_MS = 86_400_000
_QUERY_CACHE_SIZE = 16
_NO_CUTOFF = 2**63  # Later than any publishedAt: the rows of a target without a cutoff are all visible.
_CORRELATED_FRACTION = 0.7
_BY_ID = attrgetter("row_id")
# The variant and version fields of a random (version 4) UUID, as uuid.UUID(..., version=4) sets them.
_UUID_CLEAR_MASK = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_V4_BITS = (0x8000 << 48) | (4 << 76)
_YOUTUBE_ID_BYTES = 9  # 72 random bits, 12 base64url characters, of which a video id uses 11

_HANDLES = ("brand", "brandstudio", "brand.eu", "brand_us", "brandlabs", "brandkids")
_DISPLAY_NAMES = ("Brand HQ", "Brand Studio", "Brand Europe", "Brand US", "Brand Labs", "Brand Kids")
_CAPTION_OPENERS = (
    "How to prep your first week of content",
    "3 mistakes everyone makes with",
    "Behind the scenes:",
    "POV: you finally tried",
    "Day in the life with",
    "Quick tutorial on",
    "We tested",
    "Unboxing",
)
_CAPTION_TOPICS = ("batch filming", "our new serum", "morning routines", "the spring drop", "hooks that work")
_CAPTION_TAGS = ("", " #fyp", " #tutorial #howto", " #ad", " #behindthescenes")
_PLAIN_CAPTIONS = tuple(
    f"{opener} {topic}{tag}" for opener in _CAPTION_OPENERS for topic in _CAPTION_TOPICS for tag in _CAPTION_TAGS
)
#: Captions that break naive CSV writers, terminals, databases and JSON handling.
AWKWARD_CAPTIONS: tuple[str | None, ...] = (
    "🔥🔥 New drop! 🚀✨ #viral 👩‍👩‍👧‍👦",
    "新商品の紹介です 🎉 今すぐチェック · 你好世界 · 안녕하세요",
    "مرحبا بالعالم — عرض خاص لفترة محدودة",
    "שלום עולם, mixed RTL and English",
    "Line one\nLine two\r\nLine three",
    "She said \"hello\", then 'goodbye'",
    "comma, separated, caption, with, commas",
    "tab\tseparated\tcaption",
    "back\\slash \\n is not a newline: C:\\path\\to\\file",
    ("A very long caption about everything we learned this year. " * 40)[:2000],
    "",
    None,
    "zero\u200bwidth and trailing spaces   ",
    "=HYPERLINK(\"http://example.com\") <b>not html</b> 'single' ; semicolon",
)


@dataclass(frozen=True)
class Target:
    """One tracked account (an analytics target); its ``id`` is what the ``accounts`` filter takes."""

    id: str
    platform: str
    identifier: str
    display_name: str
    avatar_url: str | None = None

    @property
    def normalized_identifier(self) -> str:
        """Return the identifier as the API normalizes it: lower case, without the leading ``@``."""
        return self.identifier.lstrip("@").lower()

    def as_json(self) -> dict[str, Any]:
        """Return the target's own fields as ``GET /analytics/targets`` lists them (``target_id``: legacy alias)."""
        return {
            "id": self.id,
            "target_id": self.id,
            "platform": self.platform,
            "identifier": self.identifier,
            "display_name": self.display_name,
            "normalized_identifier": self.normalized_identifier,
        }


@dataclass(frozen=True)
class PostsQuery:
    """Validated parameters of one ``GET /analytics/summary/posts`` request.

    ``start``/``end`` (both or neither) win over ``range``. ``None`` filters mean "all".
    """

    range: str = "30d"
    start: dt.date | None = None
    end: dt.date | None = None
    platforms: frozenset[str] | None = None
    accounts: frozenset[str] | None = None
    sort_by: str = "published_at"
    sort_order: str = "desc"
    limit: int = 50
    offset: int = 0


class _Record:
    """A stored row with what queries need precomputed: sort values, target, platform."""

    __slots__ = ("platform", "row", "row_id", "target_id", "values")

    def __init__(self, row: dict[str, Any], published_ms: int, target_id: str) -> None:
        metrics = row["metrics"]
        self.row = row
        self.row_id = str(row.get("id", ""))
        self.target_id = target_id
        self.platform = str(row.get("platform", ""))
        # Index i holds the value of SORT_FIELDS[i]; index 0 is publishedAt in epoch milliseconds.
        self.values = (
            published_ms,
            int(metrics["views"]),
            int(metrics["likes"]),
            int(metrics["comments"]),
            int(metrics["shares"]),
        )

    @property
    def published_ms(self) -> int:
        """Return publishedAt in epoch milliseconds."""
        return self.values[0]


class _Ordering:
    """All records sorted by one field and direction, ties broken by row id ascending."""

    def __init__(self, field_index: int, descending: bool, records_in_id_order: Iterable[_Record]) -> None:
        """Sort records whose equal values are already in id order (a stable sort keeps that order)."""
        self.field_index = field_index
        self.descending = descending
        sign = -1 if descending else 1
        self.records = sorted(records_in_id_order, key=lambda record: sign * record.values[field_index])

    def key(self, record: _Record) -> tuple[int, str]:
        """Return the sort key of a record in this ordering."""
        value = record.values[self.field_index]
        return (-value if self.descending else value, record.row_id)

    def insert(self, record: _Record) -> None:
        """Insert a record at its place (after existing equal keys)."""
        insort_right(self.records, record, key=self.key)

    def remove(self, record: _Record) -> None:
        """Remove a record (this very one: rows may share an id)."""
        index = bisect_left(self.records, self.key(record), key=self.key)
        while self.records[index] is not record:
            index += 1
        del self.records[index]

    def published_slice(self, low_ms: int | None, high_ms: int | None) -> tuple[int, int]:
        """Return the index range of records published in ``[low_ms, high_ms)`` (publishedAt orderings only)."""
        records, key = self.records, self.key
        if self.descending:
            # Keys are (-ms, id): ms in [low, high) is -ms in (-high, -low], i.e. [-high + 1, -low + 1).
            first = 0 if high_ms is None else bisect_left(records, (-high_ms + 1, ""), key=key)
            stop = len(records) if low_ms is None else bisect_left(records, (-low_ms + 1, ""), key=key)
        else:
            first = 0 if low_ms is None else bisect_left(records, (low_ms, ""), key=key)
            stop = len(records) if high_ms is None else bisect_left(records, (high_ms, ""), key=key)
        return first, max(first, stop)


class Dataset:
    """Rows and analytics targets, with thread-safe insertion and the posts query evaluation.

    Build one with :meth:`generate` or :meth:`empty`. Rows returned by :attr:`rows` and :meth:`query` are
    the stored dicts: do not mutate them.
    """

    def __init__(self, targets: Sequence[Target], *, seed: int = 0) -> None:
        self._targets = list(targets)
        self._lock = threading.RLock()
        self._rng = random.Random(f"insert-{seed}")
        self._orderings: dict[tuple[int, bool], _Ordering] = {(0, False): _Ordering(0, False, ())}
        self._query_cache: dict[tuple[Any, ...], list[_Record]] = {}

    # ----------------------------------------------------------------------------------------- building

    @classmethod
    def empty(cls, *, targets_per_platform: int = 2, seed: int = 0) -> Dataset:
        """Return a dataset with targets but no rows, for tests that insert every row themselves."""
        rng = random.Random(seed)
        return cls(_generate_targets(rng, targets_per_platform), seed=seed)

    @classmethod
    def generate(
        cls,
        *,
        start: dt.date,
        days: int,
        rows_per_day: int = 100,
        seed: int = 0,
        day_counts: Mapping[dt.date, int] | None = None,
        targets_per_platform: int = 2,
        legacy_fraction: float = 0.0,
    ) -> Dataset:
        """Generate a deterministic dataset: the same arguments give identical rows, ids included.

        :param start: the first UTC calendar date with rows.
        :param days: how many consecutive days get rows.
        :param rows_per_day: rows on each day not named in ``day_counts``.
        :param seed: seed of the generator.
        :param day_counts: per-day row counts overriding ``rows_per_day`` (e.g. one day with 25,000 rows).
        :param targets_per_platform: analytics targets for each of tiktok, instagram and youtube.
        :param legacy_fraction: share of rows without ``analyticsId``, ``genviralPostId``, ``externalId``.
        """
        counts = dict(day_counts or {})
        outside = [day for day in counts if not 0 <= (day - start).days < days]
        if outside:
            raise ValueError(f"day_counts names days outside the generated range: {sorted(outside)}")
        rng = random.Random(seed)
        dataset = cls(_generate_targets(rng, targets_per_platform), seed=seed)
        targets = dataset._targets or [_fallback_target("tiktok")]
        records: list[_Record] = []
        with _garbage_collection_paused():
            for day_index in range(days):
                day = start + dt.timedelta(days=day_index)
                day_ms = (day.toordinal() - _EPOCH_ORDINAL) * _DAY_MS
                for published_ms in _day_timestamps(rng, day_ms, counts.get(day, rows_per_day)):
                    target = rng.choice(targets)
                    row = _generate_row(rng, target, published_ms, _caption_for(rng, len(records)))
                    if legacy_fraction and rng.random() < legacy_fraction:
                        for key in LEGACY_OMITTED_KEYS:
                            del row[key]
                    records.append(_Record(row, published_ms, target.id))
        dataset._orderings[(0, False)] = _Ordering(0, False, sorted(records, key=_BY_ID))
        return dataset

    @classmethod
    def uneven(cls, *, start: dt.date, days: int, rows_per_day: int, seed: int = 0) -> Dataset:
        """Return days whose rows follow the time of day, as real accounts' do: ten times as many at 15:00 UTC as at
        03:00, and from 0.3 to 1.7 times ``rows_per_day`` a day. What the pace of a page misjudges.

        :param start: the first UTC calendar date with rows.
        :param days: how many consecutive days get rows.
        :param rows_per_day: the average rows a day.
        :param seed: seed of the generator (of the targets, the counts and the instants).
        """
        rng = random.Random(seed)
        rows = []
        for day in range(days):
            midnight = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(), tzinfo=dt.timezone.utc)
            for _ in range(int(rows_per_day * rng.uniform(0.3, 1.7))):
                hour = rng.uniform(0, 24)
                while rng.random() > 0.1 + 0.45 * (math.sin((hour - 9) / 12 * math.pi) + 1):
                    hour = rng.uniform(0, 24)
                instant = midnight + dt.timedelta(hours=hour)
                rows.append({"publishedAt": instant.isoformat(timespec="milliseconds")})
        dataset = cls.empty(seed=seed)
        dataset.insert(rows)
        return dataset

    # ------------------------------------------------------------------------------------------ reading

    @property
    def targets(self) -> list[Target]:
        """Return the analytics targets."""
        return list(self._targets)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Return every row, oldest first (ties by id)."""
        with self._lock:
            return [record.row for record in self._orderings[(0, False)].records]

    def __len__(self) -> int:
        with self._lock:
            return len(self._orderings[(0, False)].records)

    def target_of(self, row_id: str) -> Target | None:
        """Return the target a row belongs to (``None`` if it belongs to none)."""
        with self._lock:
            target_id = next((r.target_id for r in self._orderings[(0, False)].records if r.row_id == row_id), None)
        return next((t for t in self._targets if t.id == target_id), None)

    # ------------------------------------------------------------------------------------------ writing

    def insert(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        default_published_at: dt.datetime | None = None,
        rng: random.Random | None = None,
    ) -> list[dict[str, Any]]:
        """Insert full rows or partial ones (completed with generated values); return the stored rows.

        A partial row may give any row key; ``metrics`` is merged key by key. Two sandbox-only keys are
        read and dropped: ``targetId`` (which analytics target the row belongs to; otherwise one matching
        ``platform`` and ``accountIdentifier`` is chosen) and ``_omit`` (keys to leave out, e.g.
        ``["analyticsId", "genviralPostId", "externalId"]`` for the legacy shape).

        :param default_published_at: publishedAt of rows that do not give one (default: the current time).
        :param rng: generator for the completed values (default: the dataset's own, seeded).
        :raises ValueError: on a malformed publishedAt, metric or unknown targetId.
        """
        fallback_ms = epoch_ms(default_published_at or dt.datetime.now(dt.timezone.utc))
        with self._lock:
            records = [self._complete(dict(partial), fallback_ms, rng or self._rng) for partial in rows]
            for record in records:
                self._add(record)
        return [record.row for record in records]

    def insert_arrivals(self, count: int, *, mode: str, now: dt.datetime, rng: random.Random) -> list[dict[str, Any]]:
        """Insert ``count`` generated rows as if they had just been published.

        :param mode: ``"newest"`` publishes at ``now`` or 1 ms after the newest row, whichever is later;
            ``"random"`` at random instants across the existing rows' span (shifting existing offsets).
        """
        with self._lock:
            by_time = self._orderings[(0, False)].records
            now_ms = epoch_ms(now)
            records = []
            for _ in range(count):
                if mode == "random" and by_time:
                    published_ms = rng.randint(by_time[0].published_ms, by_time[-1].published_ms)
                else:
                    published_ms = max(now_ms, by_time[-1].published_ms + 1) if by_time else now_ms
                target = rng.choice(self._targets) if self._targets else _fallback_target("tiktok")
                row = _generate_row(rng, target, published_ms, _caption_for(rng, rng.randrange(1000)))
                records.append(_Record(row, published_ms, target.id))
                self._add(records[-1])
        return [record.row for record in records]

    def delete_selected(
        self,
        query: PostsQuery,
        count: Callable[[int], tuple[int, random.Random]],
        *,
        now: dt.datetime,
        end_inclusive: bool = True,
        date_timezone: str = "UTC",
        hidden_after: Mapping[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Delete rows among those ``query`` selects (read as :meth:`query` reads it); return the rows deleted.

        :param count: given how many rows the query selects, returns how many to delete and the generator that
            chooses them (a seeded one: the same requests delete the same rows).
        """
        low_ms, high_ms = published_window(query, now=now, end_inclusive=end_inclusive, date_timezone=date_timezone)
        with self._lock:
            matches, first, total = self._matches((0, False), query, low_ms, high_ms, dict(hidden_after or {}))
            how_many, rng = count(total)
            if how_many == 0:
                return []
            chosen = [matches[first + index] for index in sorted(rng.sample(range(total), how_many))]
            for record in chosen:
                for ordering in self._orderings.values():
                    ordering.remove(record)
            self._query_cache.clear()
        return [record.row for record in chosen]

    def _add(self, record: _Record) -> None:
        for ordering in self._orderings.values():
            ordering.insert(record)
        self._query_cache.clear()

    def _complete(self, partial: dict[str, Any], fallback_ms: int, rng: random.Random) -> _Record:
        omitted = partial.pop("_omit", ())
        target = self._target_for(partial.pop("targetId", None), partial, rng)
        published_ms = _parse_published(partial.pop("publishedAt")) if "publishedAt" in partial else fallback_ms
        row = _generate_row(rng, target, published_ms, _caption_for(rng, rng.randrange(1000)))
        metrics = {**row["metrics"], **(partial.pop("metrics", None) or {})}
        row.update(partial)
        row["metrics"] = metrics
        if "id" in partial or "analyticsId" in partial:
            row_id = partial.get("id", partial.get("analyticsId"))
            row["id"] = row_id
            row["analyticsId"] = partial.get("analyticsId", row_id)
        for key in omitted:
            row.pop(key, None)
        _check_metrics(metrics)
        return _Record(row, published_ms, target.id)

    def _target_for(self, target_id: str | None, partial: Mapping[str, Any], rng: random.Random) -> Target:
        if target_id is not None:
            for target in self._targets:
                if target.id == target_id:
                    return target
            raise ValueError(f"unknown targetId {target_id!r}")
        platform = partial.get("platform")
        identifier = partial.get("accountIdentifier")
        candidates = [t for t in self._targets if platform in (None, t.platform)]
        exact = [t for t in candidates if t.identifier == identifier]
        if exact or candidates:
            return rng.choice(exact or candidates)
        return _fallback_target(str(platform or "tiktok"))

    # ---------------------------------------------------------------------------------------- querying

    def query(
        self,
        query: PostsQuery,
        *,
        now: dt.datetime,
        end_inclusive: bool = True,
        date_timezone: str = "UTC",
        tie_rng: random.Random | None = None,
        hidden_after: Mapping[str, int] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Evaluate a validated posts query; return the page of rows and the total matching count.

        :param now: the clock that ``range`` presets are relative to.
        :param end_inclusive: whether rows on the ``end`` date are included.
        :param date_timezone: IANA zone in which ``start``/``end`` calendar dates are read.
        :param tie_rng: when given, rows with equal sort values come back in an order drawn from it.
        :param hidden_after: target id to the last publishedAt (epoch ms) the analytics cache holds for it:
            that target's later rows are left out, before counting and paging. Other targets' rows all count.
        """
        low_ms, high_ms = published_window(query, now=now, end_inclusive=end_inclusive, date_timezone=date_timezone)
        field_index = SORT_FIELDS.index(query.sort_by)
        sort = (field_index, query.sort_order == "desc")
        with self._lock:
            matches, first, total = self._matches(sort, query, low_ms, high_ms, dict(hidden_after or {}))
            page_start = min(query.offset, total)
            page_stop = min(query.offset + query.limit, total)
            if tie_rng is None:
                page = matches[first + page_start : first + page_stop]
            else:
                page = _page_with_shuffled_ties(
                    matches, first, first + total, page_start, page_stop, field_index, tie_rng
                )
            return [record.row for record in page], total

    def _ordering(self, sort: tuple[int, bool]) -> _Ordering:
        """Return the ordering of all rows by (field index, descending), building it on first use."""
        ordering = self._orderings.get(sort)
        if ordering is None:
            by_time = self._orderings[(0, False)].records
            # Rows by publishedAt already have equal instants in id order; other fields need an id sort first.
            tie_order = by_time if sort[0] == 0 else sorted(by_time, key=_BY_ID)
            ordering = self._orderings[sort] = _Ordering(*sort, tie_order)
        return ordering

    def _matches(
        self,
        sort: tuple[int, bool],
        query: PostsQuery,
        low_ms: int | None,
        high_ms: int | None,
        hidden_after: dict[str, int],
    ) -> tuple[Sequence[_Record], int, int]:
        """Return (records, first, count): the matches in order are ``records[first:first + count]``."""
        unfiltered = query.platforms is None and query.accounts is None and not hidden_after
        if unfiltered and sort[0] == 0:
            ordering = self._ordering(sort)
            first, stop = ordering.published_slice(low_ms, high_ms)
            return ordering.records, first, stop - first
        if unfiltered and low_ms is None and high_ms is None:
            records = self._ordering(sort).records
            return records, 0, len(records)
        cache_key = (sort, low_ms, high_ms, query.platforms, query.accounts, frozenset(hidden_after.items()))
        cached = self._query_cache.get(cache_key)
        if cached is None:
            cached = self._select(sort, query, low_ms, high_ms, hidden_after)
            if len(self._query_cache) >= _QUERY_CACHE_SIZE:
                del self._query_cache[next(iter(self._query_cache))]
            self._query_cache[cache_key] = cached
        return cached, 0, len(cached)

    def _select(
        self,
        sort: tuple[int, bool],
        query: PostsQuery,
        low_ms: int | None,
        high_ms: int | None,
        hidden_after: dict[str, int],
    ) -> list[_Record]:
        """Return the records matching a window, filters and cache visibility, in the requested order."""
        by_time = self._orderings[(0, False)]
        first, stop = by_time.published_slice(low_ms, high_ms)
        in_window = _matching(by_time.records[first:stop], query)
        if hidden_after:
            in_window = _visible(in_window, hidden_after)
        built = self._orderings.get(sort)
        if built is not None and len(in_window) * 4 >= len(by_time.records):
            # Picking a large selection out of an existing ordering is cheaper than sorting it.
            selected = {id(record) for record in in_window}
            return [record for record in built.records if id(record) in selected]
        tie_order = in_window if sort[0] == 0 else sorted(in_window, key=_BY_ID)
        return _Ordering(*sort, tie_order).records


def _matching(records: Iterable[_Record], query: PostsQuery) -> list[_Record]:
    """Return the records that pass the platform and account filters."""
    platforms, accounts = query.platforms, query.accounts
    return [
        r
        for r in records
        if (platforms is None or r.platform in platforms) and (accounts is None or r.target_id in accounts)
    ]


def _visible(records: Iterable[_Record], hidden_after: Mapping[str, int]) -> list[_Record]:
    """Return the records the analytics cache holds: a target's rows published up to its last refresh."""
    never = _NO_CUTOFF
    return [r for r in records if r.published_ms <= hidden_after.get(r.target_id, never)]


def published_window(
    query: PostsQuery, *, now: dt.datetime, end_inclusive: bool = True, date_timezone: str = "UTC"
) -> tuple[int | None, int | None]:
    """Return the publishedAt window ``[low, high)`` in epoch ms that a query selects (``None``: unbounded).

    Dates are calendar days in ``date_timezone``; a ``range`` preset reaches back from ``now`` with no upper
    bound, and is ignored when ``start``/``end`` are given.
    """
    if query.start is not None and query.end is not None:
        zone = ZoneInfo(date_timezone)
        last_day = query.end + dt.timedelta(days=1) if end_inclusive else query.end
        low = dt.datetime.combine(query.start, dt.time(), tzinfo=zone)
        high = dt.datetime.combine(last_day, dt.time(), tzinfo=zone)
        return epoch_ms(low), epoch_ms(high)
    if query.range == "all":
        return None, None
    return epoch_ms(now - dt.timedelta(days=_RANGE_DAYS[query.range])), None


def format_instant(moment: dt.datetime) -> str:
    """Format an instant as the API formats ``publishedAt``: UTC, milliseconds, ``Z`` (a naive one is UTC)."""
    return format_published_at(epoch_ms(moment))


def format_published_at(published_ms: int) -> str:
    """Format epoch milliseconds as the API does: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    days, in_day = divmod(published_ms, _DAY_MS)
    seconds, millis = divmod(in_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    day = _day_text(days)
    return f"{day}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


@contextlib.contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: generated rows are long-lived, so its passes over them are wasted."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.lru_cache(maxsize=4096)
def _day_text(days_since_epoch: int) -> str:
    return dt.date.fromordinal(_EPOCH_ORDINAL + days_since_epoch).isoformat()


def epoch_ms(moment: dt.datetime) -> int:
    """Return an instant in epoch milliseconds (rounded down); a naive one is read as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)
    return (aware - _EPOCH) // dt.timedelta(milliseconds=1)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp, ``Z`` suffix included (which ``fromisoformat`` accepts only from 3.11)."""
    moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _parse_published(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return epoch_ms(value)
    try:
        return epoch_ms(parse_timestamp(str(value)))
    except ValueError:
        raise ValueError(f"publishedAt {value!r} is not an ISO 8601 timestamp") from None


def _check_metrics(metrics: Mapping[str, Any]) -> None:
    for name in ("views", "likes", "comments", "shares"):
        if not isinstance(metrics.get(name), int) or isinstance(metrics.get(name), bool):
            raise ValueError(f"metrics.{name} must be an integer, got {metrics.get(name)!r}")


def _page_with_shuffled_ties(
    records: Sequence[_Record],
    first: int,
    stop: int,
    page_start: int,
    page_stop: int,
    field_index: int,
    rng: random.Random,
) -> list[_Record]:
    """Return the page after shuffling every group of equal sort values it touches, across page edges."""
    low, high = first + page_start, first + page_stop
    if low >= high:
        return []
    while low > first and records[low - 1].values[field_index] == records[low].values[field_index]:
        low -= 1
    while high < stop and records[high].values[field_index] == records[high - 1].values[field_index]:
        high += 1
    block = list(records[low:high])
    group_start = 0
    for index in range(1, len(block) + 1):
        if index == len(block) or block[index].values[field_index] != block[group_start].values[field_index]:
            group = block[group_start:index]
            rng.shuffle(group)
            block[group_start:index] = group
            group_start = index
    offset = first + page_start - low
    return block[offset : offset + page_stop - page_start]


# ------------------------------------------------------------------------------------------- generation


def _uuid(rng: random.Random) -> str:
    """Return ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, formatted without the UUID object (faster)."""
    bits = rng.getrandbits(128) & _UUID_CLEAR_MASK | _UUID_V4_BITS
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _generate_targets(rng: random.Random, per_platform: int) -> list[Target]:
    targets = []
    for platform in PLATFORMS:
        for index in range(per_platform):
            handle = _HANDLES[index] if index < len(_HANDLES) else f"brand{index}"
            name = _DISPLAY_NAMES[index] if index < len(_DISPLAY_NAMES) else f"Brand {index}"
            avatar = None if index % 2 else f"https://cdn.example.com/avatars/{platform}/{handle}.jpg"
            targets.append(Target(_uuid(rng), platform, f"@{handle}", name, avatar))
    return targets


def _fallback_target(platform: str) -> Target:
    """Return a target for rows whose platform has none: it is not listed, and no account filter matches it."""
    return Target(id="", platform=platform, identifier="@brand", display_name="Brand HQ")


def _day_timestamps(rng: random.Random, day_ms: int, count: int) -> list[int]:
    """Return ``count`` instants in one UTC day: both boundaries (doubled when there is room), ties, the rest random."""
    last_ms = day_ms + _DAY_MS - 1
    fixed = [day_ms, last_ms, day_ms, last_ms] if count >= 8 else [day_ms, last_ms]
    fixed = fixed[:count]
    # random() rather than randrange(): the same spread at a fraction of the cost, for 100k-row datasets.
    rest = [day_ms + 1 + int(rng.random() * (_DAY_MS - 2)) for _ in range(count - len(fixed))]
    # Groups of three rows sharing one instant: the API documents no tie-breaker.
    for group in range(min(len(rest) // 3, max(1, count // 30))):
        rest[3 * group + 1] = rest[3 * group + 2] = rest[3 * group]
    return fixed + rest


def _caption_for(rng: random.Random, index: int) -> str | None:
    """Return a caption: every tenth row (by index) gets one of the awkward ones, in turn."""
    if index % 10 == 3:
        return AWKWARD_CAPTIONS[(index // 10) % len(AWKWARD_CAPTIONS)]
    return _PLAIN_CAPTIONS[int(rng.random() * len(_PLAIN_CAPTIONS))]


def _generate_row(rng: random.Random, target: Target, published_ms: int, caption: str | None) -> dict[str, Any]:
    row_id = _uuid(rng)
    post_id, permalink, duration = _platform_fields(rng, target)
    genviral_id, external_id = _correlation(rng)
    views = int(rng.lognormvariate(8.0, 1.6))
    likes = int(views * (0.01 + 0.11 * rng.random()))
    comments = int(likes * 0.15 * rng.random())
    shares = int(likes * 0.2 * rng.random())
    saves = int(likes * 0.1 * rng.random())
    engagement = round((likes + comments + shares + saves) * 100 / views, 2) if views else 0.0
    return {
        "id": row_id,
        "analyticsId": row_id,
        "platformPostId": post_id,
        "genviralPostId": genviral_id,
        "externalId": external_id,
        "publishedAt": format_published_at(published_ms),
        "caption": caption,
        "permalink": permalink,
        "thumbnailUrl": f"https://cdn.example.com/thumbs/{post_id}.jpg" if rng.random() < 0.95 else None,
        "durationSeconds": duration,
        "metrics": {"views": views, "likes": likes, "comments": comments, "shares": shares, "saves": saves},
        "engagementRate": engagement,
        "platform": target.platform,
        "accountIdentifier": target.identifier,
        "accountDisplayName": target.display_name,
        "accountAvatarUrl": target.avatar_url,
    }


def _platform_fields(rng: random.Random, target: Target) -> tuple[str, str, int | None]:
    """Return (platformPostId, permalink, durationSeconds) shaped like the platform's own."""
    handle = target.identifier.lstrip("@")
    if target.platform == "youtube":
        video_id = base64.urlsafe_b64encode(rng.randbytes(_YOUTUBE_ID_BYTES)).decode()[:11]
        duration = 5 + int(rng.random() * 56) if rng.random() < 0.8 else None
        return video_id, f"https://www.youtube.com/shorts/{video_id}", duration
    if target.platform == "instagram":
        media_id = str(17_800_000_000_000_000 + rng.getrandbits(58))
        return media_id, f"https://www.instagram.com/reel/{media_id[-11:]}/", 3 + int(rng.random() * 88)
    video_id = str(7_000_000_000_000_000_000 + rng.getrandbits(58))
    return video_id, f"https://www.tiktok.com/@{handle}/video/{video_id}", 5 + int(rng.random() * 176)


def _correlation(rng: random.Random) -> tuple[str | None, str | None]:
    """Return (genviralPostId, externalId): about 70% of rows are correlated, half of those with an external id."""
    if rng.random() >= _CORRELATED_FRACTION:
        return None, None
    genviral_id = _uuid(rng)
    external_id = f"automation-{_uuid(rng)}" if rng.random() < 0.5 else None
    return genviral_id, external_id
