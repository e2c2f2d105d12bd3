"""GenviralPostAnalyticsSensor: wait until posts created through Genviral have analytics rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import Context, PokeReturnValue

from genviral_provider.core.correlation import CorrelationQuery, CorrelationResult
from genviral_provider.core.freshness.gate import FreshnessGate
from genviral_provider.core.freshness.refresh import RefreshPolicy, TargetSelection
from genviral_provider.core.reading.run_window import parse_instant, window_of_run
from genviral_provider.core.rows import UTC
from genviral_provider.exceptions import GenviralInvalidParameterError, GenviralRetryableError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sensors.base import GenviralBaseSensor
from genviral_provider.triggers.genviral import (
    GenviralAnalyticsRefreshTrigger,
    GenviralPostAnalyticsTrigger,
    analytics_ids,
    error_from_event,
    validate_event,
    validate_refresh_event,
)
from genviral_provider.version_compat import conf, task_state_store

#: How far back the search reaches when ``since`` is not given: from the run's logical date (or run_after).
DEFAULT_LOOKBACK = dt.timedelta(days=1)
#: The task state store key under which a rescheduled freshness gate keeps what it started between pokes.
GATE_STATE_KEY = "genviral_freshness_gate"
#: How much longer than the sensor's timeout that saved state is kept (the store's own expiry may be shorter).
GATE_STATE_MARGIN = dt.timedelta(days=1)


class GenviralPostAnalyticsSensor(GenviralBaseSensor):
    """Wait until Genviral's analytics have rows for the given posts; return their analytics ids by id.

    Rows carry ``genviralPostId`` and ``externalId`` once Genviral correlates them, which can take minutes to
    hours (and some rows never correlate). Each poke searches the posts published since ``since``, newest
    first, and stops paging as soon as every id is found. Done, the sensor returns (as XCom, kept small) a
    mapping from each found id to the ``analyticsId`` of each of its rows; a post published to several accounts
    has several. A downstream task reads the rows themselves with :meth:`GenviralHook.find_correlated_posts`.

    A timeout fails with a message naming the ids still missing (``soft_fail`` skips instead). A refused key,
    a bad request or a TLS/certificate failure fails at once, in every mode and whatever ``soft_fail`` says;
    transient failures (429, 5xx) are retried, then poked again. An API that gives no answer at all through every
    retry (a wrong host, a refused connection, a timeout) ends the try: the task's retries apply.

    :param genviral_post_ids: ids returned by ``POST /posts``, e.g. from an upstream task's XCom (templated).
    :param external_ids: ``external_id`` values sent when creating the posts (templated).
    :param match: ``"all"`` to wait for every id, ``"any"`` for at least one.
    :param since: the earliest publication time searched: a datetime, a date or an ISO 8601 string
        (templated; default: one day before the run's logical date, or before ``run_after`` without one).
    :param platforms: only these platforms, e.g. ``["tiktok"]`` (templated).
    :param accounts: only these analytics target ids (templated).
    :param genviral_conn_id: the Airflow connection of type ``genviral`` (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators]
        default_deferrable``).
    """

    template_fields: Sequence[str] = (
        "genviral_post_ids",
        "external_ids",
        "since",
        "platforms",
        "accounts",
        "genviral_conn_id",
    )
    ui_color = "#f5e6ff"

    def __init__(
        self,
        *,
        genviral_post_ids: Sequence[str] | str | None = None,
        external_ids: Sequence[str] | str | None = None,
        match: str = "all",
        since: dt.datetime | dt.date | str | None = None,
        platforms: Sequence[str] | str | None = None,
        accounts: Sequence[str] | str | None = None,
        genviral_conn_id: str = GenviralHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.genviral_post_ids = genviral_post_ids
        self.external_ids = external_ids
        self.match = match
        self.since = since
        self.platforms = platforms
        self.accounts = accounts
        self.genviral_conn_id = genviral_conn_id
        self.deferrable = deferrable
        self._query: CorrelationQuery | None = None
        self._missing: tuple[str, ...] | None = None  # after a search: the ids it did not find
        self._detail: str | None = None  # after a search: why it may have missed rows

    def poke(self, context: Context) -> PokeReturnValue:
        """Search once; done when ``match`` holds, with the analytics ids by id as XCom."""
        query = self._prepare(context)
        try:
            result: CorrelationResult = self.hook.search_correlated_posts(query)
        except GenviralRetryableError as error:
            if error.is_unreachable:
                raise  # no answer through every retry: end the try (task retries apply), don't poke until timeout
            self.log.warning("The search failed for now; will poke again: %s", error)
            self._detail = f"the last search failed: {error}"
            return PokeReturnValue(is_done=False)
        self._missing, self._detail = result.missing, result.incomplete
        if result.incomplete:
            self.log.warning("The search did not reach since=%s: %s.", query.since.isoformat(), result.incomplete)
        if result.satisfied:
            self.log.info("Found rows for %s in %d request(s).", self._describe(result.found), result.requests)
            return PokeReturnValue(is_done=True, xcom_value=analytics_ids(result.found))
        found, total = len(query.ids) - len(result.missing), len(query.ids)
        self.log.info("Still missing %s (found %d of %d).", query.describe(result.missing), found, total)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the analytics ids by id, or fail naming the ids still missing."""
        checked = validate_event(event)
        if checked["status"] == "success":
            self.log.info("Found rows for %s.", self._describe(checked["found"]))
            return checked["found"]
        if checked["status"] == "timeout":
            self._missing, self._detail = tuple(checked["missing"]), checked.get("detail")
            self._timed_out(f"Sensor has timed out after {self.timeout:g}s. {self._still_waiting_for(context)}")
        raise error_from_event(checked)

    def _prepare(self, context: Context) -> CorrelationQuery:
        """Validate the rendered arguments once; resolve ``since``."""
        if self._query is None:
            self._query = CorrelationQuery.parse(
                genviral_post_ids=self.genviral_post_ids,
                external_ids=self.external_ids,
                match=self.match,
                since=self._since(context),
                platforms=self.platforms or None,
                accounts=self.accounts or None,
            )
        return self._query

    def _since(self, context: Context) -> object:
        if self.since is not None and self.since != "":
            return self.since
        anchor = context.get("logical_date") or context["dag_run"].run_after
        return anchor - DEFAULT_LOOKBACK

    def _trigger(self, *, end_time: float) -> GenviralPostAnalyticsTrigger:
        query = self._query
        assert query is not None, "_prepare() runs first"
        return GenviralPostAnalyticsTrigger(
            genviral_post_ids=list(query.genviral_post_ids),
            external_ids=list(query.external_ids),
            match=query.match,
            since=query.since.isoformat(),
            platforms=list(query.platforms) or None,
            accounts=list(query.accounts) or None,
            genviral_conn_id=self.genviral_conn_id,
            poke_interval=self.poke_interval,
            end_time=end_time,
        )

    def _still_waiting_for(self, context: Context) -> str:
        """Name the ids the last search did not find (every id before any search), and why it may have missed."""
        query = self._prepare(context)
        missing = query.ids if self._missing is None else self._missing
        message = (
            f"Genviral has no analytics rows yet for {query.describe(missing)} (match={self.match!r}; "
            f"found {len(query.ids) - len(missing)} of {len(query.ids)} id(s); searched posts published since "
            f"{query.since.isoformat()})."
        )
        return f"{message} Note: {self._detail.rstrip('.')}." if self._detail else message

    def _describe(self, ids: Iterable[str]) -> str:
        return self._query.describe(ids) if self._query is not None else repr(list(ids))


class GenviralAnalyticsFreshnessSensor(GenviralBaseSensor):
    """Wait until the analytics cache holds every post published before an instant: the freshness gate.

    The posts endpoint serves a cache that each analytics target refreshes asynchronously: a post published after
    its target's last refresh is not there yet. The gate passes once every selected target was refreshed at or
    after ``fresh_after`` — by default the end of the run's window (the window rule of
    :class:`~genviral_provider.operators.genviral.GenviralPostsOperator`) plus ``settle``. Freshness is what the
    API shows (a target's ``last_refreshed_at``) or a refresh this task saw complete; it is never assumed.

    While it waits it refreshes stale targets once the instant has passed: free refreshes by default, paid ones
    only up to ``max_paid_refreshes``; otherwise it waits for the platform's scheduled refresh. A timeout fails
    (``soft_fail``: skips) naming each stale target, its last refresh and why it was not refreshed.

    The three modes behave alike: what the gate started (its refreshes, its paid count, its attempts, the targets
    it skips) lasts for the whole try. Poke mode keeps it in memory, deferrable mode hands it to the trigger, and
    reschedule mode saves it after every poke in the task instance's state store (``context["task_state_store"]``,
    Airflow 3.3+), key ``genviral_freshness_gate``, and reads it back at the next poke of the same try. XComs
    would not do: Airflow clears a task's XComs each time a rescheduled try starts again. A new try (a retry,
    a cleared task) starts afresh, as it does in the other modes.

    Returns (XCom) per target its watermark (the instant the cache provably holds) and how it is proven, and the
    refreshes this task made.

    :param fresh_after: the instant the cache must reach: an ISO 8601 date-time (naive: the DAG's time zone),
        date or datetime (templated; default: the run's window end).
    :param end: the window's end, when ``fresh_after`` is not given (templated; default: from the run, as
        ``GenviralPostsOperator`` resolves it).
    :param window: the window's length for zero-width schedules, as in ``GenviralPostsOperator``.
    :param settle: extra time after the window's end the cache must reach (default 0; never negative).
    :param target_ids: only these analytics target ids (templated; default: every target of the key).
    :param platforms: only targets of these platforms (templated).
    :param free_refreshes: whether the gate may start free refreshes.
    :param max_paid_refreshes: the most refreshes the gate may start in one try that may cost credits, over
        every poke of the try (templated; default 0). In reschedule mode it needs Airflow 3.3+ (the task state
        store); on older versions it is refused there, before any request.
    :param genviral_conn_id: the Genviral connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = (
        "fresh_after",
        "end",
        "target_ids",
        "platforms",
        "max_paid_refreshes",
        "genviral_conn_id",
    )
    ui_color = "#e6f5ff"

    def __init__(
        self,
        *,
        fresh_after: dt.datetime | dt.date | str | None = None,
        end: dt.datetime | dt.date | str | None = None,
        window: dt.timedelta = dt.timedelta(days=1),
        settle: dt.timedelta = dt.timedelta(0),
        target_ids: Sequence[str] | str | None = None,
        platforms: Sequence[str] | str | None = None,
        free_refreshes: bool = True,
        max_paid_refreshes: int | str = 0,
        genviral_conn_id: str = GenviralHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fresh_after = fresh_after
        self.end = end
        self.window = window
        self.settle = settle
        self.target_ids = target_ids
        self.platforms = platforms
        self.free_refreshes = free_refreshes
        self.max_paid_refreshes = max_paid_refreshes
        self.genviral_conn_id = genviral_conn_id
        self.deferrable = deferrable
        self._gate: FreshnessGate | None = None

    def poke(self, context: Context) -> PokeReturnValue:
        """Run one round: read the targets, follow and start refreshes; done when every target is fresh."""
        gate = self._prepare(context)
        try:
            self.hook.run_refresh_round(gate)
        except GenviralRetryableError as error:
            if error.is_unreachable:
                raise  # no answer through every retry: end the try (task retries apply), don't poke until timeout
            self.log.warning("Could not check freshness for now; will check again: %s", error)
            return PokeReturnValue(is_done=False)
        finally:
            if self._rescheduled:
                self._save_state(context)  # even after a failed round: a refresh it started may cost credits
        if gate.done:
            self.log.info("Analytics are fresh after %s for %d target(s).", gate.fresh_after, len(gate.targets))
            return PokeReturnValue(is_done=True, xcom_value=gate.result())
        self.log.info("Waiting for fresh analytics after %s: %s.", gate.fresh_after, gate.describe_stale())
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the freshness summary, or fail naming the stale targets."""
        checked = validate_refresh_event(event)
        if checked["status"] == "success":
            result = checked["result"]
            fresh_after, targets = result["fresh_after"], len(result["targets"])
            self.log.info("Analytics are fresh after %s for %d target(s).", fresh_after, targets)
            return result
        if checked["status"] == "timeout":
            self._timed_out(f"Sensor has timed out after {self.timeout:g}s. {checked['message']}.")
        raise error_from_event(checked)

    def _prepare(self, context: Context) -> FreshnessGate:
        """Validate the rendered arguments once, before any request; resolve ``fresh_after``; restore a reschedule."""
        if self._gate is None:
            policy = RefreshPolicy.parse(free_refreshes=self.free_refreshes, max_paid_refreshes=self.max_paid_refreshes)
            selection = TargetSelection.parse(target_ids=self.target_ids or None, platforms=self.platforms or None)
            fresh_after = self._fresh_after(context)
            if self._rescheduled and task_state_store(context, log=self.log) is None and policy.max_paid_refreshes:
                raise GenviralInvalidParameterError(
                    f"max_paid_refreshes={policy.max_paid_refreshes} in mode='reschedule' needs Airflow 3.3 or later "
                    "(its task state store keeps the count between pokes); use mode='poke' or deferrable=True."
                )
            wait = self._wait_of(context, fresh_after, selection) if self._rescheduled else None
            saved = self._saved_state(context, wait) if wait is not None else None
            self._gate = FreshnessGate(selection=selection, policy=policy, fresh_after=fresh_after, state=saved)
        return self._gate

    @property
    def _rescheduled(self) -> bool:
        return self.mode == "reschedule" and not self.deferrable

    @staticmethod
    def _wait_of(context: Context, fresh_after: dt.datetime, selection: TargetSelection) -> dict[str, Any]:
        """What identifies the wait a saved state belongs to: the try, the instant and the selection."""
        return {
            "try_number": context["ti"].try_number,
            "fresh_after": fresh_after.astimezone(UTC).isoformat(),
            "target_ids": [*selection.target_ids],
            "platforms": [*selection.platforms],
        }

    def _saved_state(self, context: Context, wait: dict[str, Any]) -> dict[str, Any] | None:
        """Return the gate's state saved by an earlier poke of this same wait, if any."""
        store = task_state_store(context, log=self.log)
        saved = store.get(GATE_STATE_KEY) if store is not None else None
        state = saved.get("state") if isinstance(saved, dict) else None
        if not isinstance(saved, dict) or not isinstance(state, dict):
            return None
        if any(saved.get(name) != value for name, value in wait.items()):
            self.log.info(
                "Starting afresh: the saved gate state is from another wait (try %s).", saved.get("try_number")
            )
            return None
        refreshes = state.get("refreshes")
        started = len(refreshes) if isinstance(refreshes, dict) else 0
        self.log.info(
            "Resuming the wait: earlier pokes of this try started %d refresh(es), %s paid.",
            started,
            state.get("paid_started") or 0,
        )
        return state

    def _save_state(self, context: Context) -> None:
        """Keep what this poke started for the next poke of the try; forget it once the gate passes."""
        store, gate = task_state_store(context, log=self.log), self._gate
        if store is None or gate is None:
            return
        if gate.done:
            store.delete(GATE_STATE_KEY)
            return
        try:
            retention: dt.timedelta | None = dt.timedelta(seconds=float(self.timeout)) + GATE_STATE_MARGIN
        except (OverflowError, ValueError):
            retention = None  # a timeout no timedelta holds: the store's default expiry
        wait = self._wait_of(context, gate.fresh_after, gate.selection)
        store.set(GATE_STATE_KEY, {**wait, "state": gate.state()}, retention=retention)

    def _fresh_after(self, context: Context) -> dt.datetime:
        if not isinstance(self.settle, dt.timedelta) or self.settle < dt.timedelta(0):
            raise GenviralInvalidParameterError(
                f"settle {self.settle!r} is not allowed: give a timedelta of zero or more, e.g. timedelta(minutes=30)."
            )
        timezone = getattr(context.get("dag"), "timezone", None) or UTC
        explicit = parse_instant("fresh_after", self.fresh_after, timezone)
        if explicit is not None:
            return explicit + self.settle
        return window_of_run(context, end=self.end, length=self.window).end + self.settle

    def _trigger(self, *, end_time: float) -> GenviralAnalyticsRefreshTrigger:
        gate = self._gate
        assert gate is not None, "_prepare() runs first"
        return GenviralAnalyticsRefreshTrigger(
            target_ids=[*gate.selection.target_ids],
            platforms=[*gate.selection.platforms],
            free_refreshes=gate.policy.free_refreshes,
            max_paid_refreshes=gate.policy.max_paid_refreshes,
            fresh_after=gate.fresh_after.isoformat(),
            state=gate.state(),
            genviral_conn_id=self.genviral_conn_id,
            poll_interval=self.poke_interval,
            end_time=end_time,
        )

    def _still_waiting_for(self, context: Context) -> str:
        stale = self._gate.describe_stale() if self._gate is not None else "not checked"
        return f"Stale analytics targets: {stale}."
