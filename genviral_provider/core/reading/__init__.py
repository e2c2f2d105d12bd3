"""Reading: which requests fetch a run's window completely and exactly, whatever the API's reading of dates.

Owns run windows (what interval a DAG run covers), the window plan (which date queries to read, from which end)
and the pager that reads one query's rows across offsets, splitting what the offset cap cannot reach. May import
:mod:`genviral_provider.core.api` for queries and pages; it never sends a request itself (a page source does).
"""
