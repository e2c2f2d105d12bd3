"""What a correlation search looks for, validated before any request: ids, ``match``, ``since`` and filters.

Ids arrive as given in a DAG or as a Jinja template rendered them (``"['a', 'b']"``); each is checked here, so that
a bad value is named before the sensor's first poke.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.api.query import filter_values, platform_values
from genviral_provider.core.rows import UTC, parse_utc
from genviral_provider.exceptions import GenviralInvalidParameterError

MATCH_MODES = ("all", "any")
#: The longest ``external_id`` the API accepts.
MAX_EXTERNAL_ID_LENGTH = 128


@dataclass(frozen=True)
class CorrelationQuery:
    """What to search for, validated: build one with :meth:`parse`.

    :param genviral_post_ids: ids returned by ``POST /posts``.
    :param external_ids: ``external_id`` values sent when creating posts.
    :param match: ``"all"`` (every id must be found) or ``"any"`` (one suffices).
    :param since: the earliest publication time searched, aware and in UTC.
    :param platforms: only these platforms.
    :param accounts: only these analytics target ids.
    """

    genviral_post_ids: tuple[str, ...]
    external_ids: tuple[str, ...]
    match: str
    since: dt.datetime
    platforms: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        genviral_post_ids: object = None,
        external_ids: object = None,
        match: object = "all",
        since: object,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
    ) -> CorrelationQuery:
        """Validate every argument (see :func:`parse_ids` and :func:`parse_since` for accepted values).

        :raises GenviralInvalidParameterError: naming the bad value.
        """
        post_ids, externals = correlation_ids(genviral_post_ids, external_ids)
        return cls(
            genviral_post_ids=post_ids,
            external_ids=externals,
            match=check_match(match),
            since=parse_since(since),
            platforms=platform_values(platforms),
            accounts=filter_values("accounts", accounts),
        )

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id searched for: the post ids, then the external ids."""
        return self.genviral_post_ids + self.external_ids

    def describe(self, ids: Iterable[str]) -> str:
        """Name some of the ids by kind, for messages: ``genviral_post_ids ['a'] and external_ids ['x']``."""
        return describe_ids(ids, self.genviral_post_ids, self.external_ids)


def check_match(match: object) -> str:
    """Validate ``match``: ``"all"`` or ``"any"``."""
    if match not in MATCH_MODES:
        raise GenviralInvalidParameterError(f"Unknown match {match!r}: allowed are {', '.join(MATCH_MODES)}.")
    return str(match)


def correlation_ids(genviral_post_ids: object, external_ids: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate both id lists: at least one id in all, none blank, none twice (within or across the lists).

    :raises GenviralInvalidParameterError: naming the bad value.
    """
    post_ids = parse_ids("genviral_post_ids", genviral_post_ids)
    externals = parse_ids("external_ids", external_ids)
    if not post_ids and not externals:
        raise GenviralInvalidParameterError(
            "No ids to wait for: give at least one of genviral_post_ids or external_ids "
            f"(got genviral_post_ids={genviral_post_ids!r}, external_ids={external_ids!r})."
        )
    for value in externals:
        if len(value) > MAX_EXTERNAL_ID_LENGTH:
            raise GenviralInvalidParameterError(
                f"external_ids value {value!r} is {len(value)} characters long: "
                f"the API allows at most {MAX_EXTERNAL_ID_LENGTH}."
            )
    both = sorted(set(post_ids) & set(externals))
    if both:
        raise GenviralInvalidParameterError(
            f"Id {both[0]!r} is in both genviral_post_ids and external_ids: give each id once, in its own list."
        )
    return post_ids, externals


def parse_ids(name: str, value: object) -> tuple[str, ...]:
    """Validate a list of ids, as given or as rendered by a Jinja template.

    Accepts ``None`` (no ids), a list or tuple of strings, or a string: a rendered list (``"['a', 'b']"`` or
    ``'["a", "b"]'``) is read as that list, ``"None"`` (a template that rendered nothing) is refused, any
    other string is one id.

    :param name: the argument's name, for messages.
    :raises GenviralInvalidParameterError: for a non-string, blank, padded or repeated id.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip() in ("None", "null"):
            raise GenviralInvalidParameterError(
                f"{name} is {value!r}: its template rendered nothing (did the upstream task return ids?)."
            )
        value = _rendered_list(name, value)
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Mapping | bytes) or not isinstance(value, Iterable):
        raise GenviralInvalidParameterError(
            f"{name} must be a list of id strings, got {type(value).__name__} {value!r}."
        )
    else:
        items = list(value)
    ids: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise GenviralInvalidParameterError(f"{name} contains {item!r} ({type(item).__name__}): ids are strings.")
        if not item.strip():
            raise GenviralInvalidParameterError(f"{name} contains a blank id {item!r}.")
        if item != item.strip():
            raise GenviralInvalidParameterError(
                f"{name} contains {item!r}, with surrounding spaces: ids are matched exactly."
            )
        if item in ids:
            raise GenviralInvalidParameterError(f"{name} contains {item!r} more than once.")
        ids.append(item)
    return tuple(ids)


def parse_since(value: object) -> dt.datetime:
    """Return ``since`` as an aware UTC datetime.

    Accepts a datetime (a naive one is read as UTC), a date (its midnight, UTC), or an ISO 8601 string such
    as ``2026-01-31T12:00:00Z`` or ``2026-01-31``.

    :raises GenviralInvalidParameterError: for anything else.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    moment = parse_utc(value, naive=UTC)
    if moment is None:
        raise GenviralInvalidParameterError(
            f"since {value!r} is not a moment: give a datetime, a date or an ISO 8601 string "
            "such as 2026-01-31T12:00:00Z."
        )
    return moment


def describe_ids(ids: Iterable[str], genviral_post_ids: Iterable[str], external_ids: Iterable[str]) -> str:
    """Name ids by kind, for messages: ``genviral_post_ids ['a'] and external_ids ['x']``."""
    wanted = list(ids)
    parts = [
        f"{name} {[key for key in kind if key in wanted]!r}"
        for name, kind in (("genviral_post_ids", list(genviral_post_ids)), ("external_ids", list(external_ids)))
        if any(key in wanted for key in kind)
    ]
    return " and ".join(parts) if parts else "no ids"


def _rendered_list(name: str, text: str) -> Any:
    """Read a list that a template rendered as text; return other text unchanged."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")) and not (
        stripped.startswith("(") and stripped.endswith(")")
    ):
        return text
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise GenviralInvalidParameterError(
            f"{name} {text!r} looks like a rendered list but cannot be read: render it as a native object "
            "(DAG(render_template_as_native_obj=True)) or pass the list itself."
        ) from error
