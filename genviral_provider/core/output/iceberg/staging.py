"""Where a run's records wait for its commit: Arrow IPC files on local disk, read back in bounded groups.

A window's rows arrive as an iterator and may be many; the commit may have to be made again on a refreshed table
(another run committed first, or added a column), and pyiceberg deletes the data files of a commit that did not
land. So the records are not kept in memory nor written once into the table: they are flattened in batches of
:data:`STAGE_BATCH_ROWS`, each batch written as one Arrow IPC file with the columns known at that point, and each
commit attempt reads them back in groups of at most :data:`COMMIT_GROUP_ROWS` rows, each aligned to the table's
schema of that attempt (columns a batch did not have yet are null).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from genviral_provider.core.output.iceberg.layout import arrow_schema

#: Records flattened in memory before they are written to the stage as one Arrow batch.
STAGE_BATCH_ROWS = 5_000
#: Rows read back from the stage and written into the table at once (one data file per day in the group): pyiceberg
#: writes a group's days in parallel, so the group bounds the commit's memory (see docs/performance.md).
COMMIT_GROUP_ROWS = 10_000


class ArrowStage:
    """Records on local disk until a commit reads them; use as a context manager (the files are removed after).

    :param directory: where the stage's folder is made (default: the system's temporary folder).
    :param batch_rows: records per staged batch.
    """

    def __init__(self, directory: str | None = None, *, batch_rows: int = STAGE_BATCH_ROWS) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="genviral-iceberg-", dir=directory))
        self.batch_rows = batch_rows
        self.rows = 0
        self._pending: list[dict[str, Any]] = []
        self._files: list[Path] = []

    def __enter__(self) -> ArrowStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, record: dict[str, Any], columns: Mapping[str, str]) -> None:
        """Stage one record; ``columns`` are every column known so far (they only grow)."""
        self._pending.append(record)
        self.rows += 1
        if len(self._pending) >= self.batch_rows:
            self.flush(columns)

    def flush(self, columns: Mapping[str, str]) -> None:
        """Write the pending records as one Arrow batch with these columns."""
        if not self._pending:
            return
        import pyarrow as pa

        schema = arrow_schema(columns)
        batch = pa.RecordBatch.from_pylist(self._pending, schema=schema)
        path = self.folder / f"batch-{len(self._files):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_batch(batch)
        self._files.append(path)
        self._pending = []

    def groups(self, schema: Any, *, group_rows: int = COMMIT_GROUP_ROWS) -> Iterator[Any]:
        """Yield the staged records as ``pyarrow.Table`` s of ``schema``, at most about ``group_rows`` rows each."""
        import pyarrow as pa

        if self._pending:
            raise RuntimeError("flush() the pending records before reading the stage")
        tables: list[Any] = []
        rows = 0
        for path in self._files:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            tables.append(_aligned(table, schema))
            rows += table.num_rows
            if rows >= group_rows:
                yield pa.concat_tables(tables)
                tables, rows = [], 0
        if tables:
            yield pa.concat_tables(tables)

    def close(self) -> None:
        """Remove the staged files."""
        self._pending = []
        shutil.rmtree(self.folder, ignore_errors=True)


def _aligned(table: Any, schema: Any) -> Any:
    """Return a table with exactly ``schema``'s columns, in its order: missing ones null, types cast."""
    import pyarrow as pa

    arrays = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
