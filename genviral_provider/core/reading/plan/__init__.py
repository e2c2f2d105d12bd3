"""The window plan: which date queries read a run's window, from which end, at the cost of the window's own rows.

One module per step: :mod:`.pages` (what a page proves), :mod:`.memory` (what is known of the API's reading of
``end``, and what a window took), :mod:`.pace` (where rows probably lie, and how many dates a query may ask),
:mod:`.locate` (the search for the page where the window begins), :mod:`.state` (one reader's requests, rows and
proofs), :mod:`.scan` (one query's slice of the window, past the offset cap too) and :mod:`.reader` (the core
dates, the edge before, the edge after, the over-cap split). Imports :mod:`genviral_provider.core.api` only.
"""

from genviral_provider.core.reading.plan.memory import DateReading, PlanStats
from genviral_provider.core.reading.plan.pages import own_dates
from genviral_provider.core.reading.plan.reader import WindowPlanReader, WindowStream

__all__ = ["DateReading", "PlanStats", "WindowPlanReader", "WindowStream", "own_dates"]
