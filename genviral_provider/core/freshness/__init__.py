"""Freshness: analytics targets, their refreshes, and the gate that proves a window's rows are in the cache.

Owns the target and refresh records, the refresh policy (free or paid), and the sans-I/O state machines that
the sync hook and the async trigger both drive. May import :mod:`genviral_provider.core.api`; never reading or
output.
"""
