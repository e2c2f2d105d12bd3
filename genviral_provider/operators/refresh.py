"""The refresh operator: refresh analytics targets (free ones by default) and wait until the refreshes complete."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from genviral_provider.core.freshness.gate import RefreshBatch
from genviral_provider.core.freshness.refresh import RefreshPolicy, RefreshStatus, TargetSelection
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError, GenviralRefreshFailedError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.triggers.genviral import (
    DEFERRAL_GRACE,
    GenviralAnalyticsRefreshTrigger,
    describe_pending,
    error_from_event,
    validate_refresh_event,
)
from genviral_provider.version_compat import conf


class GenviralRefreshAnalyticsOperator(BaseOperator):
    """Refresh analytics targets (free ones by default) and wait until the refreshes complete.

    Each selected target gets one refresh when the policy allows it: its free refresh of the day, or, only when
    ``max_paid_refreshes`` says so, a paid one (credits are money: a target that does not say whether its free
    refresh is available counts as paid). A target not refreshed is reported with the reason and what to do.
    The task fails when a refresh ends ``failed``, naming the target and the API's error.

    A target whose refresh the API refuses for it alone (404: not in the key's scope; 400: an id it does not take)
    is skipped and named (``skipped_targets``), and the others are refreshed.

    Returns (XCom) per target: refresh id, status, ``started_at``, ``completed_at``, ``was_free``,
    ``credits_used`` (or ``status: "not_refreshed"`` and a note), the skipped targets with why, plus the task's
    paid count and credits used.

    :param target_ids: only these analytics target ids (templated; default: every target of the key).
    :param platforms: only targets of these platforms, e.g. ``["tiktok"]`` (templated).
    :param free_refreshes: whether free refreshes may be started.
    :param max_paid_refreshes: the most refreshes this task may start that may cost credits (templated;
        default 0: no credits spent).
    :param wait_for_completion: wait until every refresh has ended (``False``: return once they are started).
    :param poll_interval: seconds between two checks while waiting.
    :param timeout: seconds to wait at most for the refreshes to end; then the task fails naming them.
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators] default_deferrable``).
    :param genviral_conn_id: the Genviral connection (templated).
    """

    template_fields: Sequence[str] = ("target_ids", "platforms", "max_paid_refreshes", "genviral_conn_id")
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        target_ids: Sequence[str] | str | None = None,
        platforms: Sequence[str] | str | None = None,
        free_refreshes: bool = True,
        max_paid_refreshes: int | str = 0,
        wait_for_completion: bool = True,
        poll_interval: float = 15.0,
        timeout: float = 1800.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        genviral_conn_id: str = GenviralHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_ids = target_ids
        self.platforms = platforms
        self.free_refreshes = free_refreshes
        self.max_paid_refreshes = max_paid_refreshes
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.genviral_conn_id = genviral_conn_id

    @cached_property
    def hook(self) -> GenviralHook:
        """The hook of ``genviral_conn_id``."""
        return GenviralHook(genviral_conn_id=self.genviral_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Start the refreshes, then wait for them here or in the triggerer; return the per-target summary."""
        deadline = time.time() + _positive_seconds("timeout", self.timeout)
        poll_interval = _positive_seconds("poll_interval", self.poll_interval)
        batch = RefreshBatch(
            selection=TargetSelection.parse(target_ids=self.target_ids or None, platforms=self.platforms or None),
            policy=RefreshPolicy.parse(free_refreshes=self.free_refreshes, max_paid_refreshes=self.max_paid_refreshes),
            wait=self.wait_for_completion,
        )
        self.hook.run_refresh_round(batch)
        self._log_started(batch)
        if self.deferrable and not batch.done:
            self.defer(
                trigger=GenviralAnalyticsRefreshTrigger(
                    target_ids=[*batch.selection.target_ids],
                    platforms=[*batch.selection.platforms],
                    free_refreshes=batch.policy.free_refreshes,
                    max_paid_refreshes=batch.policy.max_paid_refreshes,
                    state=batch.state(),
                    genviral_conn_id=self.genviral_conn_id,
                    poll_interval=poll_interval,
                    end_time=deadline,
                ),
                method_name="execute_complete",
                timeout=dt.timedelta(seconds=max(deadline - time.time(), 0)) + DEFERRAL_GRACE,
            )
        while not batch.done:
            if time.time() >= deadline:
                raise GenviralError(
                    f"Refreshes did not end within timeout={self.timeout:g}s: {describe_pending(batch)}."
                )
            time.sleep(min(_positive_seconds("poll_interval", self.poll_interval), max(deadline - time.time(), 0)))
            self.hook.run_refresh_round(batch)
        return self._finish(batch.result(), failed=batch.failed())

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: return the per-target summary, or fail naming what did not end or failed."""
        checked = validate_refresh_event(event)
        if checked["status"] == "error":
            raise error_from_event(checked)
        if checked["status"] == "timeout":
            raise GenviralError(f"Refreshes did not end within {self.timeout:g}s: {checked['message']}.")
        result: dict[str, Any] = checked["result"]
        failed = {t: e for t, e in result["targets"].items() if e.get("status") == RefreshStatus.FAILED.value}
        return self._finish(result, failed=failed)

    def _log_started(self, batch: RefreshBatch) -> None:
        for target in batch.targets:
            refresh = batch.refreshes.get(target.id)
            if refresh is not None:
                cost = "free" if not refresh.paid else f"paid, {refresh.credits_used} credit(s)"
                self.log.info("Refresh %s of %s started (%s).", refresh.id, target.describe(), cost)
            else:
                self.log.warning("%s: %s.", target.describe(), batch.notes.get(target.id, "not refreshed"))
        if not batch.targets:
            self.log.warning("No analytics target matches %s: nothing to refresh.", batch.selection.describe())

    def _finish(self, result: dict[str, Any], *, failed: Mapping[str, Any]) -> dict[str, Any]:
        if failed:
            described = "; ".join(
                f"target {target_id}: refresh {_field(refresh, 'id')} failed: {_field(refresh, 'error') or 'no error'}"
                for target_id, refresh in failed.items()
            )
            raise GenviralRefreshFailedError(f"Analytics refresh failed for {described}.")
        refused: Mapping[str, str] = result.get("skipped_targets") or {}
        for target_id, why in refused.items():
            self.log.warning("Skipped analytics target %s: %s; the other targets were refreshed.", target_id, why)
        skipped = [
            t for t, entry in result["targets"].items() if entry.get("status") == "not_refreshed" and t not in refused
        ]
        if skipped:
            self.log.warning(
                "Not refreshed: %s. Their data stays as of their last refresh; to refresh them now, allow paid "
                "refreshes with max_paid_refreshes (credits), or wait for the free refresh of the next day.",
                ", ".join(skipped),
            )
        self.log.info("Refreshes done: %d paid, %d credit(s) used.", result["paid_refreshes"], result["credits_used"])
        return result


def _field(refresh: Any, name: str) -> Any:
    """Read a field of a :class:`Refresh` or of its ``as_dict()`` form (after a deferral)."""
    if isinstance(refresh, Mapping):
        return refresh.get("refresh_id" if name == "id" else name)
    return getattr(refresh, name)


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise GenviralInvalidParameterError(f"{name} {value!r} is not a positive number of seconds.")
    return float(value)
