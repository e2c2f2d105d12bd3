"""GenviralPostAnalyticsSensor: wait until posts created through Genviral have analytics rows."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from genviral_provider.core.correlation import CorrelationQuery, CorrelationResult, check_match
from genviral_provider.exceptions import GenviralRetryableError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.triggers.genviral import (
    GenviralPostAnalyticsTrigger,
    analytics_ids,
    error_from_event,
    validate_event,
)

#: How far back the search reaches when ``since`` is not given: from the run's logical date (or run_after).
DEFAULT_LOOKBACK = dt.timedelta(days=1)
#: Extra time Airflow's deferral timeout allows, so that the trigger's own timeout event (which names the
#: missing ids) arrives before Airflow cancels the trigger.
DEFERRAL_GRACE = dt.timedelta(seconds=60)


class GenviralPostAnalyticsSensor(BaseSensorOperator):
    """Wait until Genviral's analytics have rows for the given posts; return their analytics ids by id.

    Rows carry ``genviralPostId`` and ``externalId`` once Genviral correlates them, which can take minutes to
    hours (and some rows never correlate). Each poke searches the posts published since ``since``, newest
    first, and stops paging as soon as every id is found. Done, the sensor returns (as XCom, kept small) a
    mapping from each found id to the ``analyticsId`` of each of its rows; a post published to several accounts
    has several. A downstream task reads the rows themselves with :meth:`GenviralHook.find_correlated_posts`.

    A timeout fails with a message naming the ids still missing (``soft_fail`` skips instead). A refused key
    or a bad request fails at once; transient failures (429, 5xx, network) are retried, then poked again.

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
        self.match = check_match(match)
        self.since = since
        self.platforms = platforms
        self.accounts = accounts
        self.genviral_conn_id = genviral_conn_id
        self.deferrable = deferrable
        self._query: CorrelationQuery | None = None
        self._missing: tuple[str, ...] | None = None  # after a search: the ids it did not find
        self._detail: str | None = None  # after a search: why it may have missed rows

    @cached_property
    def hook(self) -> GenviralHook:
        """The hook of ``genviral_conn_id``."""
        return GenviralHook(genviral_conn_id=self.genviral_conn_id)

    def execute(self, context: Context) -> Any:
        """Poke until the posts have rows (or defer to the triggerer); return their analytics ids by id."""
        started = time.time()
        self._prepare(context)
        if not self.deferrable:
            return self._poke_until_done(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=self._trigger(end_time=started + self.timeout),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        """Search once; done when ``match`` holds, with the analytics ids by id as XCom."""
        query = self._prepare(context)
        try:
            result: CorrelationResult = self.hook.search_correlated_posts(query)
        except GenviralRetryableError as error:
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
            message = f"Sensor has timed out after {self.timeout:g}s. {self._missing_message(context)}"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise error_from_event(checked)

    def _poke_until_done(self, context: Context) -> Any:
        """Run Airflow's poke/reschedule loop, naming the ids still missing when it times out."""
        try:
            return super().execute(context)
        except AirflowSensorTimeout as error:
            raise AirflowSensorTimeout(f"{error} {self._missing_message(context)}") from error
        except AirflowSkipException as error:
            if error.__cause__ is not None or not self.soft_fail:
                raise  # not the timeout: a skip raised or wrapped by the poke
            raise AirflowSkipException(f"{error} {self._missing_message(context)}") from error

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

    def _missing_message(self, context: Context) -> str:
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
