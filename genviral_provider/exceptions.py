"""Errors raised by the Genviral provider.

Every error subclasses :class:`GenviralError`, itself an ``AirflowException``, so a task fails with the
message below and Airflow's retry settings apply — except bad configuration and refused credentials, which are
also ``AirflowFailException``: retrying cannot fix them, so the task fails at once. None of them ever carries the
API key.
"""

from __future__ import annotations

from typing import Any, ClassVar

from genviral_provider.version_compat import AirflowException, AirflowFailException


class GenviralError(AirflowException):
    """Base class of every error the Genviral provider raises."""


class GenviralInvalidParameterError(GenviralError, AirflowFailException, ValueError):
    """A value given to the provider is not one the API accepts; raised before any request is sent.

    The task fails without retries: the same value would be refused again.
    """


class GenviralAPIError(GenviralError):
    """The API answered with an error envelope (or a body that is not one).

    :param status: HTTP status code, or ``None`` when no response arrived (connection error, timeout).
    :param error_code: the envelope's machine-readable ``error_code``, when present.
    :param message: the envelope's human-readable ``message``, or a description of what went wrong.
    :param request: what was asked, e.g. ``GET /analytics/summary/posts?limit=100`` (never the key).
    """

    def __init__(self, *, status: int | None, error_code: str | None, message: str, request: str) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.request = request
        super().__init__(self._describe())

    def _describe(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        # No square brackets: Airflow's CLI renders through rich, which takes "[invalid_token]" for markup.
        code = f" {self.error_code}" if self.error_code else ""
        return f"Genviral API error on {self.request}: {status}{code}: {self.message}"

    def _init_kwargs(self) -> dict[str, Any]:
        return {"status": self.status, "error_code": self.error_code, "message": self.message, "request": self.request}

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only __init__ needs help to survive pickling (multiprocessing, some executors).
        return _rebuild, (type(self), self._init_kwargs())


def _rebuild(cls: type[GenviralAPIError], kwargs: dict[str, Any]) -> GenviralAPIError:
    return cls(**kwargs)


class GenviralAuthError(GenviralAPIError, AirflowFailException):
    """The key was refused (401), the plan does not include the API (402) or the key lacks access (403).

    The task fails without retries: the same key would be refused again until someone changes it.
    """

    HINTS: ClassVar[dict[int, str]] = {
        401: "check the API key stored in the connection's password (the whole 'public_id.secret' string)",
        402: "the workspace's subscription does not include the Partner API: check the plan",
        403: "the key's tier or workspace may not use this endpoint: check the key's workspace and plan",
    }

    def _describe(self) -> str:
        hint = self.HINTS.get(self.status or 0, "check the API key, the plan and the workspace")
        return f"{super()._describe()} ({hint})"


class GenviralRetryableError(GenviralAPIError):
    """A failure that may pass: 429, 5xx, a connection error, a timeout, or a body cut short or not JSON.

    Raised to the caller only once the retry policy gave up.

    :param retry_after: seconds the server asked to wait (``Retry-After``), when it said so.
    """

    def __init__(
        self,
        *,
        status: int | None,
        error_code: str | None,
        message: str,
        request: str,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status=status, error_code=error_code, message=message, request=request)

    def _init_kwargs(self) -> dict[str, Any]:
        return {**super()._init_kwargs(), "retry_after": self.retry_after}

    @property
    def is_unreachable(self) -> bool:
        """Whether no response arrived at all (refused connection, unknown host, TLS, timeout) through every retry.

        Waiting longer does not mend a wrong host: the sensors and the freshness gate end the try on it (the
        task's retries apply) rather than poke again until their timeout.
        """
        return self.status is None

    @property
    def is_rate_limited(self) -> bool:
        """Whether the server refused the request for its rate limit (429)."""
        return self.status == 429


class GenviralIncompleteWindowError(GenviralError):
    """A window cannot be read completely: too many rows for one filter set, or rows that could not be verified.

    The provider never truncates silently; this error names the window and the counts.
    """


class GenviralAPIContradictionError(GenviralIncompleteWindowError):
    """The API's answers contradict each other, so a window cannot be read; the message says what it said.

    E.g. ``hasMore`` true at every offset, the same rows at every offset, a ``totalCount`` that keeps
    changing: reading on would never end, so the read stops within a request budget and raises this.
    """


class GenviralTargetAPIError(GenviralAPIError):
    """The API refused a call about one analytics target; the message names the target and what to do.

    :param target_id: the analytics target the call was about.
    """

    HINT: ClassVar[str] = ""

    def __init__(self, *, target_id: str, **kwargs: Any) -> None:
        self.target_id = target_id
        super().__init__(**kwargs)

    def _describe(self) -> str:
        hint = f": {self.HINT}" if self.HINT else ""
        return f"{super()._describe()} (analytics target {self.target_id}{hint})"

    def _init_kwargs(self) -> dict[str, Any]:
        return {**super()._init_kwargs(), "target_id": self.target_id}


class GenviralInsufficientCreditsError(GenviralTargetAPIError):
    """A paid refresh was refused for lack of credits (402): the free refresh of the day is used."""

    HINT = "its free refresh of the day is used and the account has too few credits for a paid one"


class GenviralTargetNotFoundError(GenviralTargetAPIError):
    """The target is not in the key's scope (404)."""

    HINT = "no such target for this key; GET /analytics/targets lists the ids it can see"


class GenviralRefreshConflictError(GenviralTargetAPIError):
    """A refresh of the target is already running (409): wait for it rather than fail."""

    HINT = "a refresh of this target is already running; wait for it to complete"


class GenviralRefreshRateLimitedError(GenviralTargetAPIError, GenviralRetryableError):
    """Too many refreshes of the target in a short time (429): try again later."""

    HINT = "too many refreshes of this target in a short time; try again later"


class GenviralRefreshFailedError(GenviralError):
    """A refresh ended ``failed``; the message names the target, the refresh and the API's error."""


class GenviralIcebergError(GenviralError):
    """The Iceberg catalog could not be reached, or a run's commit did not land; nothing was committed."""


class GenviralSchemaChangeError(GenviralIcebergError):
    """A field's values no longer fit its table column (e.g. a ``long`` column receiving text); nothing committed.

    :param field: the column's name.
    :param old_type: the column's type in the table.
    :param new_type: the type of the value the API sent.
    """

    def __init__(self, message: str, *, field: str, old_type: str, new_type: str) -> None:
        self.field = field
        self.old_type = old_type
        self.new_type = new_type
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_schema_change, (str(self), self.field, self.old_type, self.new_type)


def _rebuild_schema_change(message: str, field: str, old_type: str, new_type: str) -> GenviralSchemaChangeError:
    return GenviralSchemaChangeError(message, field=field, old_type=old_type, new_type=new_type)
