"""What the Genviral sensors share: the hook, poking here or deferring, and how they end.

Both sensors poke in a worker (``poke``/``reschedule``) or defer to a trigger. Airflow's base sensor turns every
``AirflowFailException`` raised by a poke, and every error raised on resuming, into a skip when ``soft_fail`` is
set; a refused key, a bad argument or a TLS failure must fail the task in every mode, so this base unwraps them.
"""

from __future__ import annotations

import datetime as dt
import time
from functools import cached_property
from typing import Any, NoReturn

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.triggers.base import BaseTrigger

from genviral_provider.exceptions import GenviralError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.triggers.genviral import DEFERRAL_GRACE
from genviral_provider.version_compat import AirflowSensorTimeout, AirflowSkipException


class GenviralBaseSensor(BaseSensorOperator):
    """A sensor that pokes the Genviral API here or in the triggerer, and names what it still waits for."""

    genviral_conn_id: str
    deferrable: bool

    @cached_property
    def hook(self) -> GenviralHook:
        """The hook of ``genviral_conn_id``."""
        return GenviralHook(genviral_conn_id=self.genviral_conn_id)

    def execute(self, context: Context) -> Any:
        """Poke until done here, or poke once and defer the rest of the wait to the triggerer."""
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

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after deferral; with ``soft_fail``, skip only on timeout, as poke mode does."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            if self.soft_fail and isinstance(skip.__cause__, GenviralError | AirflowSkipException):
                raise skip.__cause__ from None  # the error itself, or the timeout's skip that says what is missing
            raise

    def _poke_until_done(self, context: Context) -> Any:
        """Run Airflow's poke/reschedule loop, saying what is still missing when it times out."""
        try:
            return super().execute(context)
        except AirflowSensorTimeout as error:
            self._timed_out(f"{error} {self._still_waiting_for(context)}")
        except AirflowSkipException as skip:
            if isinstance(skip.__cause__, GenviralError):
                raise skip.__cause__ from None  # a fatal error, which soft_fail must not hide
            if skip.__cause__ is not None or not self.soft_fail:
                raise
            raise AirflowSkipException(f"{skip} {self._still_waiting_for(context)}") from skip

    def _timed_out(self, message: str) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)

    def poke(self, context: Context) -> PokeReturnValue:
        """One check; done, with the XCom to return, when what the sensor waits for is there."""
        raise NotImplementedError

    def _prepare(self, context: Context) -> Any:
        """Validate the rendered arguments once, before any request."""
        raise NotImplementedError

    def _trigger(self, *, end_time: float) -> BaseTrigger:
        """The trigger that waits on in the triggerer until ``end_time`` (epoch seconds)."""
        raise NotImplementedError

    def _still_waiting_for(self, context: Context) -> str:
        """One or two sentences naming what the last poke did not find, for timeout messages."""
        raise NotImplementedError
