"""GenviralHook over real HTTP against the sandbox: completeness, faults, bad input, secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from typing import Any

import pytest

from genviral_provider.core.api.query import POSTS_PATH
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralIncompleteWindowError,
    GenviralInvalidParameterError,
    GenviralRetryableError,
)
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import Dataset, PostsQuery, SandboxServer

JAN_1 = dt.date(2026, 1, 1)
NOW = dt.datetime(2026, 3, 15, tzinfo=dt.timezone.utc)


def expected_ids(server: SandboxServer, start: dt.date, end: dt.date, **filters: Any) -> set[str]:
    """Return the ids one unpaged request of the window selects, under the server's reading of dates."""
    query = PostsQuery(start=start, end=end, limit=10**9, **filters)
    rows, _ = server.dataset.query(
        query, now=server.now or NOW, end_inclusive=server.end_inclusive, date_timezone=server.date_timezone
    )
    return {row["id"] for row in rows}


def read_ids(hook: GenviralHook, *args: Any, **kwargs: Any) -> list[str]:
    return [row["id"] for row in hook.iter_posts(*args, **kwargs)]


@pytest.fixture(scope="module")
def big_dataset() -> Dataset:
    """60 days, ~37,000 rows, one day alone holding 25,000 rows spread over three platforms."""
    return Dataset.generate(start=JAN_1, days=60, rows_per_day=200, seed=11, day_counts={dt.date(2026, 1, 20): 25_000})


@pytest.fixture
def hook(sandbox_conn: str) -> GenviralHook:
    return GenviralHook(genviral_conn_id=sandbox_conn)


# ---------------------------------------------------------------------------------------------- completeness


def test_window_rows_come_back_once_and_unchanged(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    rows = list(hook.iter_posts("2026-01-03", "2026-01-09"))
    by_id = {row["id"]: row for row in genviral_sandbox.dataset.rows}
    assert len(rows) == len({row["id"] for row in rows})
    assert {row["id"] for row in rows} == expected_ids(genviral_sandbox, dt.date(2026, 1, 3), dt.date(2026, 1, 9))
    assert all(row == by_id[row["id"]] for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "reading",
    [
        {},
        {"end_inclusive": False},
        {"date_timezone": "Pacific/Kiritimati"},
        {"date_timezone": "Pacific/Pago_Pago", "end_inclusive": False},
        {"shuffle_ties": True},
    ],
    ids=["inclusive-utc", "exclusive-utc", "inclusive-utc+14", "exclusive-utc-11", "ties-shuffled"],
)
def test_oversized_window_is_split_and_read_exactly_once(
    big_dataset: Dataset, genviral_sandbox_factory: Any, genviral_connection: Any, reading: dict[str, Any]
) -> None:
    server = genviral_sandbox_factory(dataset=big_dataset, now=NOW, **reading)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server))
    stream = hook.iter_posts(JAN_1, dt.date(2026, 3, 1))
    ids = [row["id"] for row in stream]
    assert len(ids) > 36_000
    assert Counter(ids).most_common(1)[0][1] == 1
    assert set(ids) == expected_ids(server, JAN_1, dt.date(2026, 3, 1))
    assert all(part.total_count <= 10_100 for part in stream.stats.parts)


def test_hot_day_is_split_by_platform_then_account(genviral_sandbox_factory: Any, genviral_connection: Any) -> None:
    day = dt.date(2026, 1, 2)
    dataset = Dataset.generate(start=JAN_1, days=3, rows_per_day=10, seed=3, day_counts={day: 33_000})
    server = genviral_sandbox_factory(dataset=dataset, now=NOW)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server))
    stream = hook.iter_posts(day, day)
    ids = [row["id"] for row in stream]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(server, day, day)
    # ~11,000 rows per platform is still past the offset cap: each platform is read account by account.
    assert {(len(part.filter.platforms), len(part.filter.accounts)) for part in stream.stats.parts} == {(1, 1)}


def test_part_that_cannot_be_split_raises_naming_window_and_counts(
    genviral_sandbox_factory: Any, genviral_connection: Any
) -> None:
    day = dt.date(2026, 1, 2)
    dataset = Dataset.generate(
        start=JAN_1, days=3, rows_per_day=10, seed=3, day_counts={day: 33_000}, targets_per_platform=1
    )
    server = genviral_sandbox_factory(dataset=dataset, now=NOW)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server))
    with pytest.raises(GenviralIncompleteWindowError) as caught:
        list(hook.iter_posts(day, day))
    message = str(caught.value)
    assert "2026-01-02..2026-01-02 platforms=" in message and " accounts=" in message
    assert "more than the 10100 one filter set can reach" in message


def test_preset_window_is_read_completely(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    ids = read_ids(hook, date_range="all")
    assert sorted(ids) == sorted(row["id"] for row in genviral_sandbox.dataset.rows)


def test_filters_reach_the_api(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    target = genviral_sandbox.dataset.targets[0]
    rows = list(hook.iter_posts(JAN_1, dt.date(2026, 1, 14), platforms=[target.platform], accounts=[target.id]))
    assert rows and {(row["platform"], row["accountIdentifier"]) for row in rows} == {
        (target.platform, target.identifier)
    }


@pytest.mark.parametrize(("mode", "per_request"), [("random", 20), ("newest", 15)])
def test_rows_arriving_while_paging_cause_no_duplicates_and_no_loss(
    genviral_sandbox_factory: Any, genviral_connection: Any, mode: str, per_request: int
) -> None:
    dataset = Dataset.generate(start=JAN_1, days=10, rows_per_day=600, seed=5)
    server = genviral_sandbox_factory(dataset=dataset, now=dt.datetime(2026, 1, 10, 23, tzinfo=dt.timezone.utc))
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_concurrency=8))
    before = expected_ids(server, JAN_1, dt.date(2026, 1, 10))
    server.faults.update(arrivals_per_request=per_request, arrival_mode=mode)
    stream = hook.iter_posts(JAN_1, dt.date(2026, 1, 10))
    ids = [row["id"] for row in stream]
    assert len(ids) == len(set(ids))
    assert before <= set(ids)
    if mode == "random":  # rows landing mid-window shift pages under concurrent reads: seams get bridged
        assert stream.stats.bridged_seams > 0


def test_window_outgrowing_the_offset_cap_while_read_is_read_again_split(
    genviral_sandbox_factory: Any, genviral_connection: Any
) -> None:
    dataset = Dataset.generate(start=JAN_1, days=10, rows_per_day=900, seed=5)
    server = genviral_sandbox_factory(dataset=dataset, now=dt.datetime(2026, 1, 10, 23, tzinfo=dt.timezone.utc))
    hook = GenviralHook(genviral_conn_id=genviral_connection(server))
    before = expected_ids(server, JAN_1, dt.date(2026, 1, 10))
    # 9,000 rows grow past 10,100 while read, at a quarter of the read's pace (a list growing as fast as it is read
    # is refused: tests/hostile/test_waits.py).
    server.faults.update(arrivals_per_request=25, arrival_mode="random")
    ids = read_ids(hook, JAN_1, dt.date(2026, 1, 10))
    assert len(ids) == len(set(ids)) > 10_100
    assert before <= set(ids)


def test_missing_analytics_id_falls_back_to_id_for_dedupe(
    genviral_sandbox_factory: Any, genviral_connection: Any
) -> None:
    dataset = Dataset.generate(start=JAN_1, days=5, rows_per_day=300, seed=8, legacy_fraction=1.0)
    server = genviral_sandbox_factory(dataset=dataset, now=NOW)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server))
    rows = list(hook.iter_posts(JAN_1, dt.date(2026, 1, 5)))
    assert all("analyticsId" not in row for row in rows)
    assert len(rows) == len({row["id"] for row in rows}) == 1500


# ---------------------------------------------------------------------------------------------- speed


def test_pages_after_the_first_are_fetched_concurrently(
    genviral_sandbox_factory: Any, genviral_connection: Any
) -> None:
    dataset = Dataset.generate(start=JAN_1, days=3, rows_per_day=400, seed=2)
    server = genviral_sandbox_factory(dataset=dataset, now=NOW)
    server.faults.latency = 0.25  # each request stays in the server long enough for the next ones to arrive
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_concurrency=6))
    assert len(read_ids(hook, JAN_1, dt.date(2026, 1, 3))) == 1200
    assert 2 <= server.stats.max_in_flight <= 6


class StepClock:
    """A clock that moves by a fixed step each time it is read: a rate limit by requests, not by seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_rate_limited_read_completes_and_slows_down(genviral_sandbox_factory: Any, genviral_connection: Any) -> None:
    dataset = Dataset.generate(start=JAN_1, days=3, rows_per_day=1000, seed=2)
    server = genviral_sandbox_factory(dataset=dataset, now=NOW)
    # 0.6 token back per request, refused or not: n requests admit at most 10 + 0.6 n, and the 30 pages need 30
    # admitted, so n >= 34 and at least 4 are refused, however fast or slow the machine.
    server.faults.clock = StepClock(0.06)
    server.faults.update(rate_limit=10.0)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_concurrency=8, max_retry_wait=30))
    assert len(set(read_ids(hook, JAN_1, dt.date(2026, 1, 3)))) == 3000
    assert server.stats.rate_limited >= 1
    assert hook.client.throttle.limits.rate is not None


# ---------------------------------------------------------------------------------------------- faults


def test_get_conn_returns_the_configured_client(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    client = hook.get_conn()
    assert client is hook.client
    assert client.settings.base_url == genviral_sandbox.url
    assert len(client.targets()) > 0


@pytest.mark.parametrize("fault", ["429", "429:1", "500", "502", "503", "504", "cut", "badjson", "reset"])
def test_transient_fault_is_retried(genviral_sandbox: SandboxServer, hook: GenviralHook, fault: str) -> None:
    genviral_sandbox.faults.script = [fault]
    page = hook.get_posts_page(limit=10)
    assert len(page["posts"]) == 10
    assert genviral_sandbox.stats.total == 2


def test_retry_after_is_waited(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    genviral_sandbox.faults.script = ["429:1"]
    hook.get_posts_page(limit=1)
    first, second = genviral_sandbox.stats.requests[-2:]
    assert second.time - first.time >= 0.95


def test_retries_are_bounded_and_the_error_says_so(genviral_sandbox: SandboxServer, genviral_connection: Any) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, max_retries=2, max_retry_wait=5))
    genviral_sandbox.faults.script = ["503"] * 5
    with pytest.raises(GenviralRetryableError) as caught:
        hook.get_posts_page(limit=1)
    assert caught.value.status == 503
    assert "Gave up after 3 attempt(s)" in caught.value.__notes__[0]
    assert genviral_sandbox.stats.total == 3


def test_server_error_past_the_budget_fails_a_window_read(
    genviral_sandbox: SandboxServer, genviral_connection: Any
) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, max_retries=1, max_retry_wait=2))
    genviral_sandbox.faults.update(error_rate=1.0, path_filter="summary/posts")
    with pytest.raises(GenviralRetryableError):
        list(hook.iter_posts(JAN_1, dt.date(2026, 1, 14)))


def test_bad_request_is_never_retried_and_shows_status_code_and_message(
    genviral_sandbox: SandboxServer, hook: GenviralHook
) -> None:
    with pytest.raises(GenviralAPIError) as caught:
        hook.client.get(POSTS_PATH, {"limit": "500"})  # bypasses the hook's validation on purpose
    assert caught.value.status == 400
    assert caught.value.error_code
    assert "limit" in str(caught.value)
    assert genviral_sandbox.stats.total == 1


def test_wrong_key_fails_at_once_with_a_hint(genviral_sandbox: SandboxServer, genviral_connection: Any) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, password="gva_live_wrong.key"))
    with pytest.raises(GenviralAuthError, match=r"HTTP 401 invalid_token: API key not found \(check the API key"):
        hook.get_posts_page()
    assert genviral_sandbox.stats.total == 1


def test_unknown_path_is_not_retried(genviral_sandbox: SandboxServer, genviral_connection: Any) -> None:
    conn_id = genviral_connection(genviral_sandbox)
    hook = GenviralHook(genviral_conn_id=conn_id)
    hook.settings  # noqa: B018 - resolve the connection, then point it at a path the API does not have
    object.__setattr__(hook.settings, "base_url", f"{genviral_sandbox.url}/nowhere")
    with pytest.raises(GenviralAPIError) as caught:
        hook.get_posts_page()
    assert caught.value.status == 404
    assert genviral_sandbox.stats.total == 1


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda hook: hook.iter_posts("2026-01-01"),
        lambda hook: hook.iter_posts("2026-01-05", "2026-01-01"),
        lambda hook: hook.iter_posts(date_range="2w"),
        lambda hook: hook.iter_posts("2026-01-01", "2026-01-02", date_range="30d"),
        lambda hook: hook.iter_posts(platforms=["tiktok,instagram"]),
        lambda hook: hook.get_posts_page(limit=101),
        lambda hook: hook.get_posts_page(offset=10_001),
        lambda hook: hook.get_posts_page(sort_by="saves"),
        lambda hook: hook.get_posts_page(sort_order="ascending"),
        lambda hook: hook.get_posts_page(accounts=[""]),
    ],
)
def test_bad_input_is_refused_before_any_request(
    genviral_sandbox: SandboxServer, hook: GenviralHook, call: Any
) -> None:
    with pytest.raises(GenviralInvalidParameterError):
        call(hook)
    assert genviral_sandbox.stats.total == 0


# ---------------------------------------------------------------------------------------------- other endpoints


def test_top_posts_by_views(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    page = hook.get_posts_page(limit=25, sort_by="views", sort_order="desc", date_range="all")
    views = [row["metrics"]["views"] for row in page["posts"]]
    assert len(views) == 25 and views == sorted(views, reverse=True)
    assert page["totalCount"] == len(genviral_sandbox.dataset.rows) and page["hasMore"]


def test_analytics_targets_are_listed(genviral_sandbox: SandboxServer, hook: GenviralHook) -> None:
    targets = hook.list_analytics_targets()
    assert {t["id"] for t in targets} == {t.id for t in genviral_sandbox.dataset.targets}
    assert {"id", "platform", "identifier", "display_name"} <= set(targets[0])


def test_connection_test_succeeds(hook: GenviralHook) -> None:
    ok, message = hook.test_connection()
    assert ok and "6 analytics target(s)" in message


def test_connection_test_fails_clearly_without_the_key(
    genviral_sandbox: SandboxServer, genviral_connection: Any
) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, password="gva_live_bad.secretvalue"))
    ok, message = hook.test_connection()
    assert not ok and "401" in message and "secretvalue" not in message


# ---------------------------------------------------------------------------------------------- connection


def test_connection_in_uri_form_with_encoded_host(
    genviral_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import quote

    uri = f"genviral://:{quote(genviral_sandbox.api_key, safe='')}@{quote(genviral_sandbox.url, safe='')}?max_retries=3"
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_URI", uri)
    hook = GenviralHook(genviral_conn_id="genviral_uri")
    assert hook.settings.base_url == genviral_sandbox.url
    assert hook.settings.max_retries == 3
    assert hook.test_connection()[0]


def test_connection_extras_tune_the_client(genviral_sandbox: SandboxServer, genviral_connection: Any) -> None:
    conn_id = genviral_connection(genviral_sandbox, timeout="12", max_concurrency=3, max_retries=0)
    settings = GenviralHook(genviral_conn_id=conn_id).settings
    assert (settings.timeout, settings.max_concurrency, settings.max_retries) == (12.0, 3, 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_retries": "nan"}, "extra max_retries='nan' is invalid: expected a whole number from 0 to 20"),
        ({"max_retry_wait": 1e9}, "extra max_retry_wait=1000000000.0 is invalid: expected a number .* to 3600"),
        ({"timeout": "soon"}, "extra timeout='soon' is invalid"),
        ({"max_concurrency": 0}, "extra max_concurrency=0 is invalid"),
    ],
)
def test_bad_connection_extras_are_named(
    genviral_sandbox: SandboxServer, genviral_connection: Any, extra: dict[str, Any], message: str
) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, **extra))
    with pytest.raises(GenviralInvalidParameterError, match=message):
        hook.get_posts_page()
    assert genviral_sandbox.stats.total == 0


def test_unknown_connection_extras_are_a_warning_naming_them(
    genviral_sandbox: SandboxServer, genviral_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, max_concurency=3))
    with caplog.at_level(logging.WARNING):
        assert hook.get_posts_page(limit=1)["posts"]
    assert "unknown extra field(s) max_concurency, ignored" in caplog.text


def test_connection_without_key_is_refused(genviral_sandbox: SandboxServer, genviral_connection: Any) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, password=""))
    with pytest.raises(GenviralInvalidParameterError, match="has no API key"):
        hook.get_posts_page()


def test_host_defaults_to_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_PUBLIC", json.dumps({"conn_type": "genviral", "password": "k.s"}))
    assert (
        GenviralHook(genviral_conn_id="genviral_public").settings.url("/x")
        == "https://www.genviral.io/api/partner/v1/x"
    )


# ---------------------------------------------------------------------------------------------- secrets


def test_key_never_appears_in_logs_errors_or_reprs(
    genviral_sandbox: SandboxServer,
    genviral_connection: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook = GenviralHook(genviral_conn_id=genviral_connection(genviral_sandbox, max_retries=3, max_retry_wait=5))
    key = genviral_sandbox.api_key
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        genviral_sandbox.faults.script = ["500", "429", "cut"]
        list(hook.iter_posts(JAN_1, dt.date(2026, 1, 3)))
        genviral_sandbox.faults.script = ["503"] * 4
        with pytest.raises(GenviralRetryableError) as retryable:
            hook.get_posts_page()
        texts += [str(retryable.value), repr(retryable.value), *retryable.value.__notes__]
    texts += [repr(hook), repr(hook.client), repr(hook.settings), caplog.text, *capsys.readouterr()]
    assert texts and all(key not in text for text in texts)
    assert all(key.split(".")[1] not in text for text in texts)


def test_connection_from_a_secrets_backend(genviral_sandbox: SandboxServer, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    connections = tmp_path / "connections.json"
    conn = {"conn_type": "genviral", "host": genviral_sandbox.url, "password": genviral_sandbox.api_key}
    connections.write_text(json.dumps({"genviral_vault": conn}))
    env = {
        **os.environ,
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
    }
    code = (
        "from genviral_provider.hooks.genviral import GenviralHook\n"
        "print(GenviralHook(genviral_conn_id='genviral_vault').test_connection())"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "(True, 'Connected to" in result.stdout, result.stderr[-2000:]


def test_airflow_connections_test_shows_the_error_code_of_a_refused_key(
    genviral_sandbox: Any, genviral_connection: Any
) -> None:
    import os
    import subprocess
    import sys

    genviral_connection(genviral_sandbox, password="gva_live_wrong.key", max_retries=0)
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "COLUMNS": "200"}
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")

    done = subprocess.run(
        [airflow, "connections", "test", "genviral_default"], env=env, capture_output=True, text=True, timeout=120
    )

    output = " ".join((done.stdout + done.stderr).split())
    assert "HTTP 401 invalid_token: API key not found" in output, output[-2000:]  # rich must not eat the code
    assert "gva_live_wrong.key" not in output
