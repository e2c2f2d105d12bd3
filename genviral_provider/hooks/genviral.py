"""GenviralHook: the Genviral Partner API's post analytics, through an Airflow connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from airflow.sdk import Connection
from airflow.sdk.log import mask_secret

from genviral_provider import get_provider_info
from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import TARGETS_PATH, page_request, posts_filter
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.correlation import CorrelationQuery, CorrelationResult, CorrelationSearch, TargetsRequest
from genviral_provider.core.freshness.gate import FreshnessGate, RefreshBatch
from genviral_provider.core.freshness.refresh import (
    AnalyticsTarget,
    Refresh,
    TargetSelection,
    parse_targets,
    refresh_error,
    refresh_path,
    refresh_target_path,
    started_refresh,
    target_path,
)
from genviral_provider.core.log import Log
from genviral_provider.core.reading.date_check import DateCheckedSource
from genviral_provider.core.reading.plan import DateReading, WindowPlanReader, WindowStream
from genviral_provider.core.reading.run_window import RunWindow, UnplaceableRows, checked_max_unplaceable
from genviral_provider.core.reading.window import ReadStats, WindowReader
from genviral_provider.core.rows import Row, published_at
from genviral_provider.exceptions import GenviralAPIError, GenviralError
from genviral_provider.version_compat import BaseHook, aextra_dejson, aget_connection, amask_secret


class PostsStream(Iterator[Row]):
    """The rows of a window, fetched as they are consumed; ``stats`` grows as they are.

    :ivar stats: parts read with the API's ``totalCount`` of each, pages fetched, seams bridged, rows yielded.
    :ivar unplaceable: the rows without a readable ``publishedAt``, skipped up to its bound (``skipped`` counts
        them); past it, the stream raises.
    """

    def __init__(self, reader: WindowReader, rows: Iterator[Row], unplaceable: UnplaceableRows | None = None) -> None:
        self._rows = rows
        self.stats: ReadStats = reader.stats
        self.unplaceable = unplaceable or UnplaceableRows()

    def __next__(self) -> Row:
        while published_at(row := next(self._rows)) is None:
            self.unplaceable.skip(row)
        return row

    def close(self) -> None:
        """Stop reading: release the pending page fetches."""
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


class GenviralHook(BaseHook):
    """Read post analytics from the Genviral Partner API.

    The connection's password holds the API key (the whole ``public_id.secret``), its host the base URL
    (default ``https://www.genviral.io``), and its extras the tuning: ``timeout``, ``max_retries``,
    ``max_retry_wait``, ``max_concurrency``. Nothing is read or sent until a method is called.

    :param genviral_conn_id: the Airflow connection of type ``genviral`` to use.
    """

    conn_name_attr = "genviral_conn_id"
    default_conn_name = "genviral_default"
    conn_type = "genviral"
    hook_name = "Genviral"

    def __init__(self, genviral_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.genviral_conn_id = genviral_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(genviral_conn_id={self.genviral_conn_id!r})"

    # From 3.2 Airflow builds the connection form from get_provider_info() and never calls these two; 3.0 and 3.1
    # only call them. Both read provider info, so the form is declared once.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's hidden, relabelled and prefilled fields (provider info's ``ui-field-behaviour``)."""
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields (provider info's ``conn-fields``) as WTForms fields.

        Without WTForms (Airflow 3.0 without the FAB provider) there are none, and the form still gets
        :meth:`get_ui_field_behaviour`, which Airflow asks for only after this returns.
        """
        try:
            from wtforms import IntegerField, StringField
            from wtforms.validators import Optional
        except ImportError:
            return {}
        widgets = {}
        for name, spec in _connection_type_info()["conn-fields"].items():
            whole = "integer" in spec["schema"]["type"]
            widgets[name] = (IntegerField if whole else StringField)(
                spec["label"],
                description=spec["description"],
                default=spec["schema"]["default"] if whole else str(spec["schema"]["default"]),
                validators=[Optional()],
            )
        return widgets

    @cached_property
    def settings(self) -> ClientSettings:
        """The connection's base URL, key and tuning (read once)."""
        conn = self.get_connection(self.genviral_conn_id)
        settings = self._settings_of(conn, conn.extra_dejson)
        for secret in _secrets(conn, settings):
            mask_secret(secret)
        return settings

    async def aget_settings(self) -> ClientSettings:
        """The connection's settings read without blocking the event loop, masked as :attr:`settings` are.

        For triggers: the triggerer masks the key's every form as a worker does.
        """
        conn = await aget_connection(self.genviral_conn_id)
        settings = self._settings_of(conn, await aextra_dejson(conn))
        for secret in _secrets(conn, settings):
            await amask_secret(secret)
        return settings

    async def aget_client(self, *, deadline: float | None = None, log: Log | None = None) -> AsyncGenviralClient:
        """An async client on the connection (enter it with ``async with``), for triggers."""
        return AsyncGenviralClient(await self.aget_settings(), deadline=deadline, log=log or self.log)

    def _settings_of(self, conn: Connection, extra: dict[str, Any]) -> ClientSettings:
        return ClientSettings.from_connection(
            conn_id=self.genviral_conn_id, host=conn.host, port=conn.port, password=conn.password, extra=extra
        )

    @cached_property
    def date_reading(self) -> DateReading:
        """What the API has shown of how it reads its dates: learned once per hook, re-proven in every window."""
        return DateReading()

    @cached_property
    def client(self) -> GenviralClient:
        """The HTTP client: pooled connections, retries and adaptive concurrency."""
        return GenviralClient(self.settings, log=self.log)

    def get_conn(self) -> GenviralClient:
        """Return the configured HTTP client (the same one :attr:`client` caches), as Airflow's hooks do."""
        return self.client

    def iter_posts(
        self,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        *,
        date_range: str | None = None,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
        max_unplaceable_rows: int = 0,
    ) -> PostsStream:
        """Yield every analytics row of a window exactly once, unchanged, as it is fetched.

        Memory stays bounded by a few pages whatever the window's size: windows beyond what one filter set
        reaches (10,100 rows) are split by date, then platform, then account, and an unsplittable part
        raises rather than truncates. With neither dates nor ``date_range``, the API's default (30 days).

        :param start: first calendar date, as the API reads it (``datetime.date`` or ``YYYY-MM-DD``).
        :param end: last calendar date, inclusive, as the API reads it.
        :param date_range: a preset instead of dates: ``14d``, ``30d``, ``90d``, ``1y`` or ``all``.
        :param platforms: only these platforms, e.g. ``["tiktok", "instagram"]``.
        :param accounts: only these analytics target ids (see :meth:`list_analytics_targets`).
        :param max_unplaceable_rows: how many rows without a readable ``publishedAt`` (missing, a number, a time
            without offset) may be skipped; by default the first one fails the read, naming it.
        :raises GenviralInvalidParameterError: before any request, for a bad value.
        :raises GenviralAPIContradictionError: when a page holds a row that no reading of the dates asked selects.
        :raises GenviralIncompleteWindowError: past ``max_unplaceable_rows`` rows that cannot be placed.
        """
        window = posts_filter(start, end, date_range=date_range, platforms=platforms, accounts=accounts)
        unplaceable = UnplaceableRows(checked_max_unplaceable(max_unplaceable_rows))
        reader = WindowReader(DateCheckedSource(self.client), log=self.log)
        return PostsStream(reader, reader.rows(window), unplaceable)

    def iter_window(
        self,
        window: RunWindow,
        *,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
    ) -> WindowStream:
        """Yield every row published in ``window`` (and some around it), reading little beyond its own rows.

        Whatever the API's reading of its dates, every row with ``start <= publishedAt < end`` is yielded, once;
        keep exactly those with a :class:`~genviral_provider.core.reading.run_window.WindowFilter`. What the API
        showed of its reading is kept on the hook for the next window, and re-proven in each (see
        ``docs/performance.md``).

        :param window: the instants to read, ``[start, end)``.
        :param platforms: only these platforms.
        :param accounts: only these analytics target ids.
        :raises GenviralInvalidParameterError: before any request, for a bad value.
        """
        filters = posts_filter(platforms=platforms, accounts=accounts)
        reader = WindowPlanReader(
            DateCheckedSource(self.client), window, filters, reading=self.date_reading, log=self.log
        )
        return WindowStream(reader)

    def get_posts_page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        sort_by: str = "published_at",
        sort_order: str = "desc",
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        date_range: str | None = None,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the envelope's ``data``: ``posts``, ``totalCount``, ``hasMore``.

        For a top list (say the 25 posts with most views), not for complete reads: use :meth:`iter_posts`.

        :param limit: page size, 1..100.
        :param offset: rows to skip, 0..10000.
        :param sort_by: ``published_at``, ``views``, ``likes``, ``comments`` or ``shares``.
        :param sort_order: ``asc`` or ``desc``.
        """
        window = posts_filter(start, end, date_range=date_range, platforms=platforms, accounts=accounts)
        request = page_request(window, limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order)
        page = self.client.fetch(request)
        return {"posts": page.posts, "totalCount": page.total_count, "hasMore": page.has_more}

    def list_analytics_targets(self) -> list[dict[str, Any]]:
        """Return the tracked accounts with every field the API sends.

        Documented fields: ``id``, ``platform``, ``identifier``, ``display_name``, ``free_refresh_available``, and
        ``last_refreshed_at`` when the API includes it. Their ids are what the ``accounts`` filter takes.
        """
        return self.client.targets()

    def get_analytics_targets(
        self, *, target_ids: Iterable[str] | str | None = None, platforms: Iterable[str] | str | None = None
    ) -> list[AnalyticsTarget]:
        """Return the selected targets (all by default) as records, with their freshness (one request).

        :param target_ids: only these analytics target ids; an id the key cannot see is an error.
        :param platforms: only targets of these platforms.
        :raises GenviralInvalidParameterError: for a malformed or unknown id, or an unknown platform.
        """
        selection = TargetSelection.parse(target_ids=target_ids, platforms=platforms)
        return selection.select(parse_targets(self.client.get(TARGETS_PATH, {}), request=f"GET {TARGETS_PATH}"))

    def get_analytics_target(self, target_id: str) -> dict[str, Any]:
        """Return one target's ``data``: ``target`` and ``summary`` (profile, totals, refresh status).

        :raises GenviralTargetNotFoundError: when the target is not in the key's scope.
        """
        path = target_path(target_id)
        try:
            data: dict[str, Any] = self.client.get(path, {})
        except GenviralAPIError as error:
            raise refresh_error(error, target_id=target_id) from error
        return data

    def refresh_analytics_target(self, target_id: str) -> Refresh:
        """Start a refresh of one target and return it (``was_free`` says whether it cost credits).

        Sent once, never retried. Outside the target's free daily refresh this **costs credits**: to refresh
        within a budget, use :class:`~genviral_provider.operators.genviral.GenviralRefreshAnalyticsOperator`.

        :raises GenviralInsufficientCreditsError: 402, the free refresh is used and credits are short.
        :raises GenviralTargetNotFoundError: 404, the target is not in the key's scope.
        :raises GenviralRefreshConflictError: 409, a refresh of the target is already running: wait for it.
        :raises GenviralRefreshRateLimitedError: 429, too many refreshes of the target lately.
        """
        path = refresh_target_path(target_id)
        try:
            data = self.client.post(path)
        except GenviralAPIError as error:
            raise refresh_error(error, target_id=target_id) from error
        return started_refresh(data, request=f"POST {path}")

    def get_analytics_refresh(self, refresh_id: str) -> Refresh:
        """Return a refresh's current state (``pending``, ``processing``, ``completed`` or ``failed``)."""
        path = refresh_path(refresh_id)
        return Refresh.from_api(self.client.get(path, {}), request=f"GET {path}")

    def run_refresh_round(self, machine: RefreshBatch | FreshnessGate) -> None:
        """Send one round of a refresh machine's requests (see :mod:`genviral_provider.core.freshness.gate`)."""
        for call in machine.round():
            try:
                outcome = self.client.request(call.method, call.path, {}, retry=call.retry)
            except GenviralAPIError as error:
                outcome = error
            machine.answer(call, outcome, redact=self.settings.redact)

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with one cheap request; the message never contains the key."""
        try:
            targets = self.list_analytics_targets()
            return True, f"Connected to {self.settings.base_url}: {len(targets)} analytics target(s) visible."
        except GenviralError as error:
            return False, str(error)
        except Exception as error:  # the UI's Test button shows the message: never a raw traceback
            return False, self._redacted(f"Connection test failed: {type(error).__name__}: {error}")

    def _redacted(self, text: str) -> str:
        """Return ``text`` without the key, whether or not the connection could be read."""
        try:
            return self.settings.redact(text)
        except Exception:  # the connection itself is unreadable: its key was never used or known
            return text

    def find_correlated_posts(
        self,
        *,
        genviral_post_ids: Iterable[str] | str | None = None,
        external_ids: Iterable[str] | str | None = None,
        match: str = "all",
        since: dt.datetime | dt.date | str,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
    ) -> CorrelationResult:
        """Search the posts published since ``since``, newest first, for the rows of the given ids.

        Paging stops as soon as every id is found. A row matches by ``genviralPostId`` or ``externalId``.
        Returns a :class:`~genviral_provider.core.correlation.CorrelationResult` (``found``, ``missing``,
        ``satisfied``).

        :param genviral_post_ids: ids returned by ``POST /posts``.
        :param external_ids: ``external_id`` values sent when creating posts.
        :param match: ``"all"`` or ``"any"``: what :attr:`CorrelationResult.satisfied` means.
        :param since: the earliest publication time searched (a naive datetime is read as UTC).
        :param platforms: only these platforms.
        :param accounts: only these analytics target ids.
        :raises GenviralInvalidParameterError: before any request, for a bad value.
        """
        query = CorrelationQuery.parse(
            genviral_post_ids=genviral_post_ids,
            external_ids=external_ids,
            match=match,
            since=since,
            platforms=platforms,
            accounts=accounts,
        )
        return self.search_correlated_posts(query)

    def search_correlated_posts(self, query: CorrelationQuery) -> CorrelationResult:
        """Run an already validated correlation search (see :meth:`find_correlated_posts`)."""
        search = CorrelationSearch(query)
        while (request := search.next_request()) is not None:
            if isinstance(request, TargetsRequest):
                search.consume_targets(self.client.targets())
            else:
                search.consume(self.client.fetch(request))
        return search.result()


def _secrets(conn: Connection, settings: ClientSettings) -> list[str]:
    """What to mask: the password as stored, and every form of the key that is sent or a server may quote back."""
    return [secret for secret in (conn.password, *settings.secret_forms()) if secret]


def _connection_type_info() -> dict[str, Any]:
    [connection_type] = get_provider_info()["connection-types"]
    return dict(connection_type)
