"""GenviralPostAnalyticsTrigger: wait in the triggerer until given posts have analytics rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.correlation import CorrelationQuery, CorrelationSearch, TargetsRequest
from genviral_provider.core.freshness.gate import FreshnessGate, RefreshBatch, parse_fresh_after
from genviral_provider.core.freshness.refresh import RefreshPolicy, TargetSelection
from genviral_provider.core.rows import Row, row_key
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralError,
    GenviralInvalidParameterError,
    GenviralRetryableError,
)
from genviral_provider.hooks.genviral import GenviralHook

#: The terminal statuses of the trigger's one event.
EVENT_STATUSES = ("success", "timeout", "error")
#: The shortest wait between two searches, whatever ``poke_interval`` says.
MIN_POLL_INTERVAL = 0.5
#: Extra time Airflow's deferral timeout allows, so that a trigger's own timeout event (which names what is
#: missing) arrives before Airflow cancels the trigger.
DEFERRAL_GRACE = dt.timedelta(seconds=60)
_API_ERRORS: dict[str, type[GenviralAPIError]] = {
    cls.__name__: cls for cls in (GenviralAPIError, GenviralAuthError, GenviralRetryableError)
}


class GenviralBaseTrigger(BaseTrigger):
    """What both triggers share: rebuilt from their own attributes, one client, rounds paced until ``end_time``."""

    genviral_conn_id: str
    end_time: float

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the kwargs that rebuild this trigger: each constructor argument's attribute.

        Every constructor argument is kept, as JSON primitives, in the attribute of the same name.
        """
        arguments = inspect.signature(type(self).__init__).parameters
        kwargs = {name: getattr(self, name) for name in arguments if name != "self"}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def _client(self) -> AsyncGenviralClient:
        """The connection's client, read through the hook (so the key's forms are masked here too)."""
        hook = GenviralHook(genviral_conn_id=self.genviral_conn_id)
        return await hook.aget_client(deadline=self.end_time, log=self.log)

    async def _pause(self, interval: float) -> None:
        """Wait ``interval`` seconds before the next round (at least :data:`MIN_POLL_INTERVAL`), never past the end."""
        await asyncio.sleep(min(max(interval, MIN_POLL_INTERVAL), self.end_time - time.time()))


class GenviralPostAnalyticsTrigger(GenviralBaseTrigger):
    """Search the posts published since ``since`` every ``poke_interval`` seconds until the ids are found.

    Fully asynchronous (``httpx``, async connection retrieval, ``asyncio.sleep``); transient failures are
    retried until ``end_time``. Yields exactly one event (checked by :func:`validate_event`):

    - ``{"status": "success", "found", "missing"}`` once ``match`` holds;
    - ``{"status": "timeout", "found", "missing", "message", "detail"}`` at ``end_time`` (``detail``: why
      the last search may have missed rows, or ``None``);
    - ``{"status": "error", "message", "error_type", "status_code", "error_code", "request"}`` at once for a
      refused key, a bad request or a bad connection.

    ``found`` maps each id found to the ids of its analytics rows (see :func:`analytics_ids`), never the rows:
    events are stored in the metadata database. ``missing`` lists the ids not found.

    :param genviral_post_ids: ids returned by ``POST /posts``.
    :param external_ids: ``external_id`` values sent when creating posts.
    :param match: ``"all"`` or ``"any"``.
    :param since: the earliest publication time searched, as an ISO 8601 string.
    :param platforms: only these platforms.
    :param accounts: only these analytics target ids.
    :param genviral_conn_id: the connection holding the API key (the key itself never travels here).
    :param poke_interval: seconds between two searches.
    :param end_time: when to give up, as ``time.time()`` seconds.
    """

    def __init__(
        self,
        *,
        genviral_post_ids: list[str] | None = None,
        external_ids: list[str] | None = None,
        match: str = "all",
        since: str,
        platforms: list[str] | None = None,
        accounts: list[str] | None = None,
        genviral_conn_id: str = "genviral_default",
        poke_interval: float = 60.0,
        end_time: float,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.genviral_post_ids = list(genviral_post_ids or [])
        self.external_ids = list(external_ids or [])
        self.match = match
        self.since = since
        self.platforms = None if platforms is None else list(platforms)
        self.accounts = None if accounts is None else list(accounts)
        self.genviral_conn_id = genviral_conn_id
        self.poke_interval = float(poke_interval)
        self.end_time = float(end_time)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Search until the ids are found, the deadline passes or the API refuses; yield one event."""
        yield TriggerEvent(await self._wait())  # type: ignore[no-untyped-call]

    async def _wait(self) -> dict[str, Any]:
        """Return the one terminal event: success, timeout or error."""
        try:
            query = self._query()
            async with await self._client() as client:
                while True:
                    search, failure = await self._search_once(client, query)
                    if failure is None and search.satisfied:
                        return {
                            "status": "success",
                            "found": analytics_ids(search.found),
                            "missing": list(search.missing),
                        }
                    if time.time() >= self.end_time:
                        return self._timeout_event(search, failure)
                    self.log.info("Still missing %s; searching again.", search.describe_missing())
                    await self._pause(self.poke_interval)
        except Exception as error:  # one event whatever fails: a refused key, a bad request, no connection
            return error_event(error)

    async def _search_once(
        self, client: AsyncGenviralClient, query: CorrelationQuery
    ) -> tuple[CorrelationSearch, GenviralRetryableError | None]:
        """Page through the window once; a transient failure that outlasted the retries is returned."""
        search = CorrelationSearch(query)
        try:
            while (request := search.next_request()) is not None:
                if isinstance(request, TargetsRequest):
                    search.consume_targets(await client.targets())
                else:
                    search.consume(await client.fetch(request))
        except GenviralRetryableError as error:
            if error.is_unreachable:
                raise  # no answer through every retry: the task fails (its retries apply) instead of waiting on
            self.log.warning("The search failed for now, will search again: %s", error)
            return search, error
        return search, None

    def _query(self) -> CorrelationQuery:
        return CorrelationQuery.parse(
            genviral_post_ids=self.genviral_post_ids,
            external_ids=self.external_ids,
            match=self.match,
            since=self.since,
            platforms=self.platforms,
            accounts=self.accounts,
        )

    def _timeout_event(self, search: CorrelationSearch, failure: GenviralError | None) -> dict[str, Any]:
        detail = f"the last search failed: {failure}" if failure is not None else search.incomplete
        return {
            "status": "timeout",
            "found": analytics_ids(search.found),
            "missing": list(search.missing),
            "message": f"still missing {search.describe_missing()}",
            "detail": detail,
        }


def analytics_ids(found: Mapping[str, list[Row]]) -> dict[str, list[str]]:
    """Map each id found to the ids of its rows: ``analyticsId`` (or the legacy ``id``), one per account posted to.

    A row without either id (older API versions) is named by its content, as JSON.
    """
    return {key: [row_key(row) for row in rows] for key, rows in found.items()}


def error_event(error: Exception) -> dict[str, Any]:
    """Describe an error as the trigger's ``error`` event (JSON primitives; never the key)."""
    api_error = error if isinstance(error, GenviralAPIError) else None
    return {
        "status": "error",
        "message": api_error.message if api_error is not None else str(error) or type(error).__name__,
        "error_type": type(error).__name__,
        "status_code": api_error.status if api_error is not None else None,
        "error_code": api_error.error_code if api_error is not None else None,
        "request": api_error.request if api_error is not None else None,
    }


def validate_event(event: object) -> dict[str, Any]:
    """Check that an event is one the trigger yields; return it.

    :raises GenviralError: for a missing or malformed event.
    """
    if not isinstance(event, Mapping):
        raise GenviralError(f"Genviral trigger returned no valid event: {event!r}.")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise GenviralError(f"Genviral trigger event has status {status!r}: expected one of {EVENT_STATUSES}.")
    if status == "error":
        if not isinstance(event.get("message"), str):
            raise GenviralError(f"Genviral trigger error event has no message: {dict(event)!r}.")
        return dict(event)
    found, missing = event.get("found"), event.get("missing")
    if not isinstance(found, Mapping) or not all(
        isinstance(ids, list) and all(isinstance(value, str) for value in ids) for ids in found.values()
    ):
        raise GenviralError(f"Genviral trigger {status} event has no 'found' mapping of id to analytics row ids.")
    if not isinstance(missing, list) or not all(isinstance(key, str) for key in missing):
        raise GenviralError(f"Genviral trigger {status} event has no 'missing' list of ids.")
    return dict(event)


def error_from_event(event: Mapping[str, Any]) -> GenviralError:
    """Rebuild the provider's error that an ``error`` event stands for."""
    message = str(event.get("message"))
    error_type = event.get("error_type")
    error_class = _API_ERRORS.get(str(error_type))
    if error_class is not None:
        return error_class(
            status=event.get("status_code"),
            error_code=event.get("error_code"),
            message=message,
            request=str(event.get("request") or "the posts search"),
        )
    if error_type == GenviralInvalidParameterError.__name__:
        return GenviralInvalidParameterError(message)
    return GenviralError(f"Genviral trigger failed with {error_type or 'an error'}: {message}")


#: The terminal statuses of :class:`GenviralAnalyticsRefreshTrigger`'s one event.
REFRESH_EVENT_STATUSES = ("success", "timeout", "error")


class GenviralAnalyticsRefreshTrigger(GenviralBaseTrigger):
    """Drive analytics refreshes in the triggerer: refresh targets, or wait until they are fresh.

    Without ``fresh_after`` it runs a :class:`~genviral_provider.core.freshness.gate.RefreshBatch` (refresh each
    selected target once, follow the refreshes until they end); with it, a
    :class:`~genviral_provider.core.freshness.gate.FreshnessGate` (wait until every selected target was refreshed at
    or after that instant, refreshing within the policy). One round every ``poll_interval`` seconds, until done
    or ``end_time``. Yields exactly one event:

    - ``{"status": "success", "result", "state"}`` when done;
    - ``{"status": "timeout", "result", "state", "message"}`` at ``end_time``; ``message`` names what is missing;
    - ``{"status": "error", "message", "error_type", ...}`` (see :func:`error_event`) for a refused key, a bad
      request, an unknown target.

    ``result`` is the machine's small summary; ``state`` what this task started (refresh ids, paid count).

    :param target_ids: only these analytics target ids.
    :param platforms: only targets of these platforms.
    :param free_refreshes: whether free refreshes may be started.
    :param max_paid_refreshes: the most refreshes this task may start that may cost credits.
    :param fresh_after: an ISO 8601 instant with offset: wait for freshness instead of refreshing once.
    :param wait: with no ``fresh_after``, follow the refreshes until they end.
    :param state: what the task started before deferring (from the machine's ``state()``).
    :param genviral_conn_id: the connection holding the API key (the key itself never travels here).
    :param poll_interval: seconds between two rounds.
    :param end_time: when to give up, as ``time.time()`` seconds.
    """

    def __init__(
        self,
        *,
        target_ids: list[str] | None = None,
        platforms: list[str] | None = None,
        free_refreshes: bool = True,
        max_paid_refreshes: int = 0,
        fresh_after: str | None = None,
        wait: bool = True,
        state: dict[str, Any] | None = None,
        genviral_conn_id: str = "genviral_default",
        poll_interval: float = 30.0,
        end_time: float,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.target_ids = list(target_ids or [])
        self.platforms = list(platforms or [])
        self.free_refreshes = free_refreshes
        self.max_paid_refreshes = max_paid_refreshes
        self.fresh_after = fresh_after
        self.wait = wait
        self.state = dict(state or {})
        self.genviral_conn_id = genviral_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Run rounds until done, the deadline passes or the API refuses; yield one event."""
        yield TriggerEvent(await self._drive())  # type: ignore[no-untyped-call]

    def machine(self) -> RefreshBatch | FreshnessGate:
        """Build the state machine these arguments describe (validating them)."""
        common: dict[str, Any] = {
            "selection": TargetSelection.parse(target_ids=self.target_ids or None, platforms=self.platforms or None),
            "policy": RefreshPolicy.parse(
                free_refreshes=self.free_refreshes, max_paid_refreshes=self.max_paid_refreshes
            ),
            "state": self.state,
        }
        if self.fresh_after is None:
            return RefreshBatch(wait=self.wait, **common)
        return FreshnessGate(fresh_after=parse_fresh_after("fresh_after", self.fresh_after), **common)

    async def _drive(self) -> dict[str, Any]:
        try:
            machine = self.machine()
            async with await self._client() as client:
                while True:
                    await run_refresh_round(client, machine)
                    if machine.done:
                        return {"status": "success", "result": machine.result(), "state": machine.state()}
                    if time.time() >= self.end_time:
                        return {
                            "status": "timeout",
                            "result": machine.result(),
                            "state": machine.state(),
                            "message": describe_pending(machine),
                        }
                    self.log.info("Not done: %s; next round in %gs.", describe_pending(machine), self.poll_interval)
                    await self._pause(self.poll_interval)
        except Exception as error:  # one event whatever fails: a refused key, an unknown target, no connection
            return error_event(error)


async def run_refresh_round(client: AsyncGenviralClient, machine: RefreshBatch | FreshnessGate) -> None:
    """Send one round of a refresh machine's requests without blocking the loop."""
    for call in machine.round():
        try:
            outcome = await client.request(call.method, call.path, {}, retry=call.retry)
        except GenviralAPIError as error:
            outcome = error
        machine.answer(call, outcome, redact=client.settings.redact)


def describe_pending(machine: RefreshBatch | FreshnessGate) -> str:
    """Say what a machine still waits for: stale targets (gate) or running refreshes (batch)."""
    if isinstance(machine, FreshnessGate):
        return f"stale analytics targets: {machine.describe_stale()}"
    running = [f"{target_id} ({refresh.status.value})" for target_id, refresh in machine.refreshes.items()]
    return f"refreshes still running: {', '.join(running) or 'none'}"


def validate_refresh_event(event: object) -> dict[str, Any]:
    """Check that an event is one :class:`GenviralAnalyticsRefreshTrigger` yields; return it.

    :raises GenviralError: for a missing or malformed event.
    """
    if not isinstance(event, Mapping) or event.get("status") not in REFRESH_EVENT_STATUSES:
        raise GenviralError(f"Genviral refresh trigger returned no valid event: {event!r:.500}.")
    if event["status"] == "error":
        if not isinstance(event.get("message"), str):
            raise GenviralError(f"Genviral refresh trigger error event has no message: {dict(event)!r:.500}.")
    elif not isinstance(event.get("result"), Mapping) or not isinstance(event.get("state"), Mapping):
        raise GenviralError(f"Genviral refresh trigger {event['status']} event has no result and state.")
    return dict(event)
