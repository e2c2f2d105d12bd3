"""Specification of the sandbox dataset: generated rows, insertion, and query evaluation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import re
import threading
import uuid
from collections import Counter
from typing import Any

import pytest

from genviral_provider.sandbox import (
    AWKWARD_CAPTIONS,
    LEGACY_OMITTED_KEYS,
    PLATFORMS,
    Dataset,
    PostsQuery,
    published_window,
)

UTC = dt.timezone.utc
START = dt.date(2026, 1, 1)
NOW = dt.datetime(2026, 1, 15, 12, tzinfo=UTC)
ROW_KEYS = {
    "id",
    "analyticsId",
    "platformPostId",
    "genviralPostId",
    "externalId",
    "publishedAt",
    "caption",
    "permalink",
    "thumbnailUrl",
    "durationSeconds",
    "metrics",
    "engagementRate",
    "platform",
    "accountIdentifier",
    "accountDisplayName",
    "accountAvatarUrl",
}
METRIC_KEYS = {"views", "likes", "comments", "shares", "saves"}
PUBLISHED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """14 days x 40 rows; module-scoped, so tests here must not insert into it."""
    return Dataset.generate(start=START, days=14, rows_per_day=40, seed=7)


def published_ms(row: dict[str, Any]) -> int:
    return ms(row["publishedAt"].replace("Z", "+00:00"))


def ms(text: str) -> int:
    """Return an ISO 8601 instant in epoch milliseconds."""
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def reference_query(dataset: Dataset, query: PostsQuery, **semantics: Any) -> tuple[list[dict[str, Any]], int]:
    """Evaluate a query the slow, obvious way: filter every row, sort by (value, id)."""
    low, high = published_window(query, now=NOW, **semantics)

    def matches(row: dict[str, Any]) -> bool:
        instant = published_ms(row)
        return (
            (low is None or instant >= low)
            and (high is None or instant < high)
            and (query.platforms is None or row["platform"] in query.platforms)
            and (query.accounts is None or getattr(dataset.target_of(row["id"]), "id", None) in query.accounts)
        )

    def value(row: dict[str, Any]) -> int:
        return published_ms(row) if query.sort_by == "published_at" else int(row["metrics"][query.sort_by])

    sign = -1 if query.sort_order == "desc" else 1
    selected = sorted((row for row in dataset.rows if matches(row)), key=lambda row: (sign * value(row), row["id"]))
    return selected[query.offset : query.offset + query.limit], len(selected)


# ------------------------------------------------------------------------------------------- generation


def test_same_arguments_generate_identical_rows() -> None:
    first = Dataset.generate(start=START, days=3, rows_per_day=20, seed=3)
    second = Dataset.generate(start=START, days=3, rows_per_day=20, seed=3)
    assert first.rows == second.rows
    assert first.targets == second.targets


def test_different_seeds_generate_different_ids() -> None:
    first = Dataset.generate(start=START, days=1, rows_per_day=20, seed=1)
    second = Dataset.generate(start=START, days=1, rows_per_day=20, seed=2)
    assert {row["id"] for row in first.rows}.isdisjoint(row["id"] for row in second.rows)


def test_ids_are_version_4_uuids(dataset: Dataset) -> None:
    for row in dataset.rows:
        assert uuid.UUID(row["id"]).version == 4
        assert str(uuid.UUID(row["id"])) == row["id"]


def test_rows_have_exactly_the_documented_keys(dataset: Dataset) -> None:
    for row in dataset.rows:
        assert set(row) == ROW_KEYS
        assert set(row["metrics"]) == METRIC_KEYS


def test_analytics_id_equals_id(dataset: Dataset) -> None:
    assert all(row["analyticsId"] == row["id"] for row in dataset.rows)


def test_published_at_is_utc_with_milliseconds_and_z(dataset: Dataset) -> None:
    assert all(PUBLISHED_AT.fullmatch(row["publishedAt"]) for row in dataset.rows)


def test_rows_are_ordered_by_published_at_then_id(dataset: Dataset) -> None:
    keys = [(row["publishedAt"], row["id"]) for row in dataset.rows]
    assert keys == sorted(keys)


def test_every_day_has_rows_at_both_boundaries(dataset: Dataset) -> None:
    instants = {row["publishedAt"] for row in dataset.rows}
    for day in (START + dt.timedelta(days=n) for n in range(14)):
        assert f"{day}T00:00:00.000Z" in instants
        assert f"{day}T23:59:59.999Z" in instants


def test_every_day_has_rows_sharing_one_instant(dataset: Dataset) -> None:
    per_day_ties = Counter(
        instant[:10] for instant, count in Counter(row["publishedAt"] for row in dataset.rows).items() if count > 1
    )
    assert all(per_day_ties[str(START + dt.timedelta(days=n))] >= 2 for n in range(14))


def test_rows_per_day_is_exact(dataset: Dataset) -> None:
    per_day = Counter(row["publishedAt"][:10] for row in dataset.rows)
    assert set(per_day.values()) == {40}
    assert len(per_day) == 14


def test_day_counts_override_rows_per_day() -> None:
    big_day = START + dt.timedelta(days=1)
    generated = Dataset.generate(start=START, days=3, rows_per_day=5, day_counts={big_day: 2500, START: 0})
    per_day = Counter(row["publishedAt"][:10] for row in generated.rows)
    assert per_day == {str(big_day): 2500, str(START + dt.timedelta(days=2)): 5}


def test_day_counts_outside_the_generated_days_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        Dataset.generate(start=START, days=2, day_counts={START - dt.timedelta(days=1): 10})


def test_each_platform_has_targets_per_platform_targets() -> None:
    generated = Dataset.generate(start=START, days=1, rows_per_day=1, targets_per_platform=3)
    assert Counter(target.platform for target in generated.targets) == dict.fromkeys(PLATFORMS, 3)
    assert len({target.id for target in generated.targets}) == 9


def test_rows_take_platform_and_account_fields_from_their_target(dataset: Dataset) -> None:
    for row in dataset.rows:
        target = dataset.target_of(row["id"])
        assert target is not None
        assert (row["platform"], row["accountIdentifier"], row["accountDisplayName"], row["accountAvatarUrl"]) == (
            target.platform,
            target.identifier,
            target.display_name,
            target.avatar_url,
        )


def test_rows_cover_every_platform(dataset: Dataset) -> None:
    assert {row["platform"] for row in dataset.rows} == set(PLATFORMS)


def test_about_seventy_percent_of_rows_are_correlated(dataset: Dataset) -> None:
    correlated = sum(row["genviralPostId"] is not None for row in dataset.rows) / len(dataset.rows)
    assert 0.6 < correlated < 0.8


def test_uncorrelated_rows_have_neither_genviral_nor_external_id(dataset: Dataset) -> None:
    assert all(row["externalId"] is None for row in dataset.rows if row["genviralPostId"] is None)


def test_external_ids_are_automation_uuids_on_some_correlated_rows(dataset: Dataset) -> None:
    external_ids = [row["externalId"] for row in dataset.rows if row["externalId"] is not None]
    assert external_ids
    assert all(re.fullmatch(r"automation-[0-9a-f-]{36}", external_id) for external_id in external_ids)


def test_every_awkward_caption_appears(dataset: Dataset) -> None:
    captions = [row["caption"] for row in dataset.rows]
    for awkward in AWKWARD_CAPTIONS:
        assert awkward in captions


def test_awkward_captions_include_the_hard_cases() -> None:
    texts = [caption for caption in AWKWARD_CAPTIONS if caption is not None]
    assert None in AWKWARD_CAPTIONS
    assert "" in texts
    assert any(len(caption) == 2000 for caption in texts)
    for needle in ("\n", "\t", "\\", '"', ",", "🔥", "你好", "مرحبا"):
        assert any(needle in caption for caption in texts), needle


def test_some_youtube_rows_have_no_duration(dataset: Dataset) -> None:
    durations = [row["durationSeconds"] for row in dataset.rows if row["platform"] == "youtube"]
    assert None in durations
    assert any(duration is not None for duration in durations)


def test_legacy_fraction_of_rows_omit_the_correlation_keys() -> None:
    generated = Dataset.generate(start=START, days=2, rows_per_day=100, legacy_fraction=0.3)
    legacy = [row for row in generated.rows if "analyticsId" not in row]
    assert 0.2 < len(legacy) / len(generated.rows) < 0.4
    assert all(not set(LEGACY_OMITTED_KEYS) & set(row) for row in legacy)
    assert all(set(row) == ROW_KEYS - set(LEGACY_OMITTED_KEYS) for row in legacy)


def test_empty_dataset_has_targets_but_no_rows() -> None:
    empty = Dataset.empty(targets_per_platform=1)
    assert empty.rows == []
    assert [target.platform for target in empty.targets] == list(PLATFORMS)


# -------------------------------------------------------------------------------------------- insertion


def test_insert_completes_a_partial_row_with_generated_values() -> None:
    empty = Dataset.empty()
    (row,) = empty.insert([{"genviralPostId": "gv-1", "externalId": "ext-1", "platform": "youtube"}])
    assert set(row) == ROW_KEYS
    assert (row["genviralPostId"], row["externalId"], row["platform"]) == ("gv-1", "ext-1", "youtube")
    assert row["analyticsId"] == row["id"]


def test_insert_normalises_published_at_to_the_api_format() -> None:
    (row,) = Dataset.empty().insert([{"publishedAt": "2026-01-05T10:00:00+01:00"}])
    assert row["publishedAt"] == "2026-01-05T09:00:00.000Z"


def test_insert_without_published_at_uses_the_default_instant() -> None:
    (row,) = Dataset.empty().insert([{}], default_published_at=NOW)
    assert row["publishedAt"] == "2026-01-15T12:00:00.000Z"


def test_insert_merges_partial_metrics() -> None:
    (row,) = Dataset.empty().insert([{"metrics": {"views": 5}}])
    assert row["metrics"]["views"] == 5
    assert set(row["metrics"]) == METRIC_KEYS


def test_insert_with_an_id_sets_analytics_id_too() -> None:
    (row,) = Dataset.empty().insert([{"id": "row-1"}])
    assert (row["id"], row["analyticsId"]) == ("row-1", "row-1")


def test_insert_attaches_the_row_to_the_named_target() -> None:
    empty = Dataset.empty()
    target = empty.targets[-1]
    (row,) = empty.insert([{"targetId": target.id}])
    assert "targetId" not in row
    assert (row["platform"], row["accountIdentifier"]) == (target.platform, target.identifier)
    assert empty.target_of(row["id"]) == target


def test_insert_rejects_an_unknown_target_id() -> None:
    with pytest.raises(ValueError, match="targetId"):
        Dataset.empty().insert([{"targetId": "nope"}])


def test_insert_rejects_a_malformed_published_at() -> None:
    with pytest.raises(ValueError, match="publishedAt"):
        Dataset.empty().insert([{"publishedAt": "yesterday"}])


def test_insert_rejects_a_non_integer_metric() -> None:
    with pytest.raises(ValueError, match="views"):
        Dataset.empty().insert([{"metrics": {"views": "many"}}])


def test_insert_can_omit_keys_for_the_legacy_shape() -> None:
    (row,) = Dataset.empty().insert([{"_omit": list(LEGACY_OMITTED_KEYS)}])
    assert set(row) == ROW_KEYS - set(LEGACY_OMITTED_KEYS)


def test_insert_keeps_rows_ordered_by_published_at() -> None:
    generated = Dataset.generate(start=START, days=2, rows_per_day=10)
    generated.insert([{"publishedAt": "2026-01-01T12:00:00.000Z"}, {"publishedAt": "2025-12-31T00:00:00.000Z"}])
    keys = [(row["publishedAt"], row["id"]) for row in generated.rows]
    assert keys == sorted(keys)
    assert len(keys) == 22


def test_concurrent_inserts_lose_no_rows() -> None:
    empty = Dataset.empty()

    def insert_many() -> None:
        for _ in range(50):
            empty.insert([{"publishedAt": f"2026-01-0{random.randint(1, 9)}T00:00:00.000Z"}])

    threads = [threading.Thread(target=insert_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [(row["publishedAt"], row["id"]) for row in empty.rows]
    assert len(keys) == 200
    assert keys == sorted(keys)


def test_insert_arrivals_newest_publishes_at_now_then_after_the_newest_row() -> None:
    copy = Dataset.generate(start=START, days=2, rows_per_day=10)
    newest = copy.rows[-1]["publishedAt"]
    arrived = copy.insert_arrivals(3, mode="newest", now=NOW, rng=random.Random(0))
    assert [row["publishedAt"] for row in arrived] == [
        "2026-01-15T12:00:00.000Z",
        "2026-01-15T12:00:00.001Z",
        "2026-01-15T12:00:00.002Z",
    ]
    assert newest < arrived[0]["publishedAt"]


def test_insert_arrivals_random_publishes_inside_the_existing_span() -> None:
    copy = Dataset.generate(start=START, days=2, rows_per_day=10)
    first, last = copy.rows[0]["publishedAt"], copy.rows[-1]["publishedAt"]
    arrived = copy.insert_arrivals(20, mode="random", now=NOW, rng=random.Random(0))
    assert all(first <= row["publishedAt"] <= last for row in arrived)


# ---------------------------------------------------------------------------------------------- queries


@pytest.mark.parametrize("sort_by", ["published_at", "views", "likes", "comments", "shares"])
@pytest.mark.parametrize("sort_order", ["asc", "desc"])
@pytest.mark.parametrize(
    "filters",
    [{}, {"platforms": frozenset({"tiktok", "youtube"})}, {"start": dt.date(2026, 1, 3), "end": dt.date(2026, 1, 6)}],
    ids=["all", "platforms", "dates"],
)
def test_query_pages_match_a_plain_filter_and_sort(
    dataset: Dataset, sort_by: str, sort_order: str, filters: dict[str, Any]
) -> None:
    for offset in (0, 100, 500):
        query = PostsQuery(range="all", sort_by=sort_by, sort_order=sort_order, limit=100, offset=offset, **filters)
        assert dataset.query(query, now=NOW) == reference_query(dataset, query)


def test_query_filters_on_analytics_target_ids(dataset: Dataset) -> None:
    target = dataset.targets[1]
    query = PostsQuery(range="all", accounts=frozenset({target.id}), limit=100)
    page, total = dataset.query(query, now=NOW)
    assert (page, total) == reference_query(dataset, query)
    assert {row["accountIdentifier"] for row in page} == {target.identifier}


def test_query_ties_come_back_in_id_order(dataset: Dataset) -> None:
    page, _ = dataset.query(PostsQuery(range="all", limit=100), now=NOW)
    for before, after in itertools.pairwise(page):
        if before["publishedAt"] == after["publishedAt"]:
            assert before["id"] < after["id"]


def test_query_sees_rows_inserted_after_a_cached_query() -> None:
    generated = Dataset.generate(start=START, days=2, rows_per_day=10)
    query = PostsQuery(range="all", platforms=frozenset({"tiktok"}))
    _, before = generated.query(query, now=NOW)
    generated.insert([{"platform": "tiktok", "publishedAt": "2026-01-01T05:00:00Z"}])
    assert generated.query(query, now=NOW)[1] == before + 1


@pytest.mark.parametrize("sort_by", ["published_at", "views"])
@pytest.mark.parametrize(
    "filters",
    [{}, {"platforms": frozenset({"tiktok"})}, {"start": dt.date(2026, 1, 5), "end": dt.date(2026, 1, 8)}],
    ids=["all", "platforms", "dates"],
)
def test_query_hides_rows_published_after_their_target_s_cutoff_before_counting(
    dataset: Dataset, sort_by: str, filters: dict[str, Any]
) -> None:
    lagging, cutoff = dataset.targets[0].id, ms("2026-01-06T12:00:00+00:00")
    for offset in (0, 100):
        query = PostsQuery(range="all", sort_by=sort_by, limit=100, offset=offset, **filters)
        page, total = dataset.query(query, now=NOW, hidden_after={lagging: cutoff})
        everything, _ = reference_query(dataset, dataclasses.replace(query, limit=10_000, offset=0))
        visible = [
            row
            for row in everything
            if getattr(dataset.target_of(row["id"]), "id", None) != lagging or published_ms(row) <= cutoff
        ]
        assert (page, total) == (visible[offset : offset + 100], len(visible))
        assert total < len(everything)


def test_query_without_cutoffs_serves_every_row(dataset: Dataset) -> None:
    query = PostsQuery(range="all", limit=100)
    assert dataset.query(query, now=NOW, hidden_after={}) == dataset.query(query, now=NOW)
    assert dataset.query(query, now=NOW)[1] == 560


def test_query_past_the_end_returns_an_empty_page_and_the_total(dataset: Dataset) -> None:
    assert dataset.query(PostsQuery(range="all", offset=10_000), now=NOW) == ([], 560)


def test_shuffled_ties_keep_each_position_s_sort_value() -> None:
    generated = Dataset.generate(start=START, days=3, rows_per_day=200)
    query = PostsQuery(range="all", sort_by="shares", sort_order="asc", limit=100, offset=40)
    plain, _ = generated.query(query, now=NOW)
    shuffled, _ = generated.query(query, now=NOW, tie_rng=random.Random(1))
    assert [row["metrics"]["shares"] for row in shuffled] == [row["metrics"]["shares"] for row in plain]
    assert shuffled != plain


# --------------------------------------------------------------------------------------- window readings


def test_window_with_inclusive_end_ends_at_midnight_after_the_end_date() -> None:
    query = PostsQuery(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 6))
    assert published_window(query, now=NOW) == (ms("2026-01-05T00:00:00+00:00"), ms("2026-01-07T00:00:00+00:00"))


def test_window_with_exclusive_end_ends_at_midnight_of_the_end_date() -> None:
    query = PostsQuery(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 6))
    window = published_window(query, now=NOW, end_inclusive=False)
    assert window == (ms("2026-01-05T00:00:00+00:00"), ms("2026-01-06T00:00:00+00:00"))


def test_window_dates_are_read_in_the_configured_time_zone() -> None:
    query = PostsQuery(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 5))
    window = published_window(query, now=NOW, date_timezone="America/New_York")
    assert window == (ms("2026-01-05T05:00:00+00:00"), ms("2026-01-06T05:00:00+00:00"))


@pytest.mark.parametrize(("preset", "days"), [("14d", 14), ("30d", 30), ("90d", 90), ("1y", 365)])
def test_range_presets_reach_back_from_now_without_an_upper_bound(preset: str, days: int) -> None:
    window = published_window(PostsQuery(range=preset), now=NOW)
    assert window == (int((NOW - dt.timedelta(days=days)).timestamp() * 1000), None)


def test_range_all_is_unbounded() -> None:
    assert published_window(PostsQuery(range="all"), now=NOW) == (None, None)


def test_dates_win_over_range() -> None:
    query = PostsQuery(range="14d", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 1))
    assert published_window(query, now=NOW)[0] == ms("2025-01-01T00:00:00+00:00")
