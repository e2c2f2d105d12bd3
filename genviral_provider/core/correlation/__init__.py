"""Finding the analytics rows of given posts: which ids to look for, which pages to read, when to stop.

Rows carry ``genviralPostId`` (the id ``POST /posts`` returned) and ``externalId`` (the creator's
``external_id``) once Genviral correlates them — minutes to hours after publication, sometimes never.
:mod:`.query` validates what to look for (:class:`CorrelationQuery`); :mod:`.search` holds the
:class:`CorrelationSearch`, which reads the posts published since a moment, newest first, proving each seam between
pages as the window reader does, and stops as soon as every id is found. It knows nothing of HTTP: the sync hook
and the async trigger drive the same state machine::

    search = CorrelationSearch(CorrelationQuery.parse(genviral_post_ids=["d0e1..."], since=since))
    while (request := search.next_request()) is not None:
        if isinstance(request, TargetsRequest):  # a tie in one platform, to be searched one account at a time
            search.consume_targets(client.targets())
        else:
            search.consume(client.fetch(request))  # or: await async_client.fetch(request)
    result = search.result()

Imports :mod:`genviral_provider.core.api` and the seam proofs and dates of :mod:`genviral_provider.core.reading`.
"""

from genviral_provider.core.correlation.query import (
    MATCH_MODES,
    MAX_EXTERNAL_ID_LENGTH,
    CorrelationQuery,
    check_match,
    correlation_ids,
    describe_ids,
    parse_ids,
    parse_since,
)
from genviral_provider.core.correlation.search import CorrelationResult, CorrelationSearch, TargetsRequest

__all__ = [
    "MATCH_MODES",
    "MAX_EXTERNAL_ID_LENGTH",
    "CorrelationQuery",
    "CorrelationResult",
    "CorrelationSearch",
    "TargetsRequest",
    "check_match",
    "correlation_ids",
    "describe_ids",
    "parse_ids",
    "parse_since",
]
