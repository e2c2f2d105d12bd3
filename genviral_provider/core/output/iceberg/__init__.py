"""Output as an Apache Iceberg table: the table's layout, the rows staged for a commit, the catalog, the sink.

Owns everything pyiceberg is asked: which columns a table has and how a row fills them (``layout``), where a run's
rows wait until they are committed (``staging``), how a catalog is opened from plain properties (``catalog``), and
the one atomic commit of a run's window with retries (``sink``). pyiceberg is imported only when a sink or catalog
is used (the ``iceberg`` extra), never at import.

May import the other modules of :mod:`genviral_provider.core.output` (the Parquet layout of ``formats``),
:mod:`genviral_provider.core.reading` (run windows) and :mod:`genviral_provider.core.rows`; never Airflow: the
connection that names the catalog is read by ``genviral_provider.hooks.iceberg``, which hands properties here.
"""
