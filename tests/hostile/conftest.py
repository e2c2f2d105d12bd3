"""Fixtures of the hostile tests: a misbehaving server, fast client settings, a time bound, a leak check."""

from __future__ import annotations

import logging
import signal
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from genviral_provider.core.api.settings import ClientSettings
from tests.hostile.server import API_KEY, SECRET_PART, Behaviour, HostileServer

#: No hostile test may take longer than this, whatever the client does (the server also caps requests).
TEST_TIME_BOUND = 45


@pytest.fixture(autouse=True)
def time_bound() -> Iterator[None]:
    """Fail a test that runs past :data:`TEST_TIME_BOUND` seconds instead of letting it hang."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"hostile test still running after {TEST_TIME_BOUND}s: the client did not give up")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIME_BOUND)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileServer]]:
    """Return a function that starts a :class:`HostileServer` answering with a behaviour (stopped at teardown)."""
    servers: list[HostileServer] = []

    def start(behave: Behaviour, **kwargs: Any) -> HostileServer:
        server = HostileServer(behave, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fast_settings(server: HostileServer | str, **tuning: Any) -> ClientSettings:
    """Return settings for ``server`` with small timeouts and retry budgets, so that every case ends quickly."""
    url = server if isinstance(server, str) else server.url
    defaults: dict[str, Any] = {"timeout": 2.0, "max_retries": 2, "max_retry_wait": 1.0, "max_concurrency": 2}
    return ClientSettings(base_url=url, api_key=API_KEY, **{**defaults, **tuning})


class LeakCheck:
    """Collects every text a test produced and asserts the key is in none of them."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        self.caplog = caplog
        self.capsys = capsys
        self.texts: list[str] = []

    def error(self, error: BaseException) -> str:
        """Record an error's message, repr, notes and whole traceback (causes included); return its message."""
        self.texts += [str(error), repr(error), *getattr(error, "__notes__", [])]
        self.texts.append("".join(traceback.format_exception(error)))
        return str(error)

    def text(self, *texts: object) -> None:
        """Record more texts (messages, reprs)."""
        self.texts += [str(text) for text in texts]

    def assert_clean(self, key: str = API_KEY) -> None:
        """Assert that neither the key nor its secret part is in any text, any log record or the output."""
        out, err = self.capsys.readouterr()
        records = [record.getMessage() for record in self.caplog.records]
        everything = [*self.texts, self.caplog.text, *records, out, err]
        secret = key.split(".")[-1]
        leaks = [text[:300] for text in everything if key in text or (len(secret) >= 8 and secret in text)]
        assert not leaks, f"the key leaked into: {leaks}"


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> LeakCheck:
    """Capture every logger at DEBUG; return the :class:`LeakCheck` a test ends with."""
    caplog.set_level(logging.DEBUG)
    return LeakCheck(caplog, capsys)


__all__ = ["API_KEY", "SECRET_PART", "LeakCheck", "fast_settings"]
