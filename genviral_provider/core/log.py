"""The logging the core needs: Airflow's structlog loggers and stdlib loggers both fit."""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    """A logger with ``%``-style ``info`` and ``warning``."""

    def info(self, msg: str, /, *args: Any) -> Any:
        """Log at INFO."""

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Log at WARNING."""
