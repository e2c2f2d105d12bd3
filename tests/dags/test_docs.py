"""The documentation cannot rot: every Python block is an excerpt of a real file, or runs; every link resolves.

A ```python block whose first line is ``# from <path>`` (a file under dags/ or tests/) must appear verbatim, as
whole lines, in that file, and compile. Every other ```python block is executed, page by page in one namespace,
with the `genviral_default` connection pointed at the default sandbox and `genviral_output_base` at a temporary
folder holding two small metrics snapshots.

The two `test_example_*` tests at the end are shown in docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest

from genviral_provider.hooks.genviral import GenviralHook
from tests.conftest import needs_iceberg
from tests.dags.conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
EXCERPT_MARK = re.compile(r"# from ((?:dags|tests)/[\w./-]+\.py)\n")
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: Lines a page's executed blocks must print.
EXPECTED_OUTPUT = {
    "docs/connection.md": ["True"],
    "docs/iceberg.md": ["genviral.posts 80 rows, snapshot True", "[('2026-01-05', 40), ('2026-01-06', 40)]"],
    "docs/metrics-snapshots.md": ["row-1: 10 views on 2026-01-14, 25 on 2026-01-15"],
    "docs/object-storage.md": ["file file:///tmp/genviral/posts/published_date=2026-01-05"],
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: pathlib.Path
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def excerpt_of(self) -> str | None:
        match = EXCERPT_MARK.match(self.code)
        return match.group(1) if match else None


def blocks(page: pathlib.Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, text.count("\n", 0, match.start()) + 1, match.group(1).strip(), match.group(2))
        for match in FENCE.finditer(text)
    ]


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]
EXCERPTS = [block for block in PYTHON_BLOCKS if block.excerpt_of]
RUN_PAGES = sorted({block.page for block in PYTHON_BLOCKS if not block.excerpt_of})


def _page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(REPO))


# ------------------------------------------------------------------------------------------------ pages


def test_every_hook_operator_sensor_and_trigger_class_is_documented() -> None:
    import importlib
    import inspect

    from genviral_provider import get_provider_info

    info = get_provider_info()
    modules = [
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]
    classes = {
        name
        for module in modules
        for name, value in vars(importlib.import_module(module)).items()
        if inspect.isclass(value)
        and value.__module__ == module
        and name.startswith("Genviral")
        and not name.endswith(("Base", "BaseSensor", "BaseTrigger"))
        and "Facet" not in name
    }
    text = "\n".join(page.read_text() for page in PAGES)
    assert len(classes) >= 6
    assert sorted(name for name in classes if f"`{name}`" not in text) == []


def test_no_page_tells_the_user_to_create_a_pool_before_running() -> None:
    # Pools are optional (the example DAGs use none): only the optional section and troubleshooting may say how.
    optional = re.compile(r"^## Optional: a pool.*?(?=^## )", re.MULTILINE | re.DOTALL)
    for page in PAGES:
        text = page.read_text()
        if page.name == "backfilling.md":
            text = optional.sub("", text)
        if page.name != "troubleshooting.md":
            assert "pools set" not in text, f"{page.relative_to(REPO)} tells the user to create a pool"


def test_index_links_every_page() -> None:
    linked = set(LINK.findall((DOCS / "index.md").read_text()))

    assert sorted(page.name for page in DOCS.glob("*.md") if page.name != "index.md" and page.name not in linked) == []


def test_python_blocks_are_tagged_python_so_none_escapes_the_checks() -> None:
    loose = [block.name for block in ALL_BLOCKS if block.language.lower() in ("py", "python3", "pycon", "ipython")]

    assert loose == []
    assert len(PYTHON_BLOCKS) >= 10


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page: pathlib.Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        missing_anchor = bool(anchor) and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)

    assert broken == []


def _anchors(page: pathlib.Path) -> set[str]:
    """Return the GitHub anchors of a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# ------------------------------------------------------------------------------------------------ README


def _readme_sections() -> list[str]:
    return re.findall(r"^## (.+)$", (REPO / "README.md").read_text(), re.MULTILINE)


def test_readme_opens_with_what_the_provider_does_then_the_quick_start() -> None:
    readme = (REPO / "README.md").read_text()
    opening = readme.split("\n## ", 1)[0]

    assert "Genviral" in opening and "Airflow" in opening
    assert _readme_sections()[0] == "Quick start"


def test_the_quick_start_is_exactly_make_demo_and_make_test() -> None:
    quick_start = (REPO / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    first_block = FENCE.search(quick_start)

    assert first_block is not None
    assert first_block.group(2).splitlines() == ["make demo", "make test"]
    assert len(FENCE.findall(quick_start)) == 1


def test_readme_sections_follow_the_order_a_newcomer_needs() -> None:
    assert _readme_sections() == [
        "Quick start",
        "Install into an existing Airflow",
        "The connection",
        "Add the tasks to a DAG",
        "Backfill history",
        "Run the DAGs against the real API",
        "Documentation",
        "Develop",
    ]


# ------------------------------------------------------------------------------------------------ code


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda block: block.name)
def test_every_excerpt_appears_verbatim_in_its_file_and_compiles(block: Block) -> None:
    source_path = REPO / str(block.excerpt_of)
    excerpt = EXCERPT_MARK.sub("", block.code, count=1)

    assert source_path.is_file(), f"{block.name}: {block.excerpt_of} does not exist"
    assert excerpt.strip(), f"{block.name}: empty excerpt"
    assert ("\n" + excerpt) in ("\n" + source_path.read_text(encoding="utf-8")), (
        f"{block.name} is not a verbatim excerpt of {block.excerpt_of}: copy it from the file again"
    )
    compile(_compilable(textwrap.dedent(excerpt)), block.name, "exec")


def _compilable(code: str) -> str:
    """Close an excerpt that ends inside a call (e.g. arguments of `with DAG(`) so that it can compile."""
    try:
        compile(code, "<excerpt>", "exec")
    except SyntaxError:
        return f"f(\n{code})\n"
    return code


@pytest.fixture
def docs_environment(sandbox_conn: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Run blocks in a temporary folder, with the Variable's base holding two metrics snapshots."""
    base = tmp_path / "output"
    for day, views in (("2026-01-14", 10), ("2026-01-15", 25)):
        folder = base / "metrics_snapshots" / f"snapshot_date={day}"
        folder.mkdir(parents=True)
        row = {"id": "row-1", "publishedAt": "2026-01-13T08:00:00.000Z", "metrics": {"views": views}}
        (folder / "part-00000.jsonl").write_text(json.dumps(row) + "\n")
        manifest = {"row_count": 1, "files": [{"name": "part-00000.jsonl", "rows": 1}]}
        (folder / "_manifest.json").write_text(json.dumps(manifest))
    (base / "metrics_snapshots" / "snapshot_date=2026-01-16").mkdir()  # being written: no manifest yet
    monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_BASE", f"file://{base}")
    monkeypatch.chdir(tmp_path)
    return base


@pytest.mark.parametrize(
    "page",
    [pytest.param(page, marks=needs_iceberg) if page.name == "iceberg.md" else page for page in RUN_PAGES],
    ids=_page_id,
)
def test_every_other_python_block_runs(page: pathlib.Path, docs_environment: pathlib.Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    output = io.StringIO()
    environ = dict(os.environ)
    try:
        for block in (block for block in PYTHON_BLOCKS if block.page == page and not block.excerpt_of):
            with contextlib.redirect_stdout(output):
                exec(compile(block.code, block.name, "exec"), namespace)
    finally:
        os.environ.clear()
        os.environ.update(environ)

    printed = output.getvalue().splitlines()
    for expected in EXPECTED_OUTPUT.get(_page_id(page), []):
        assert any(expected in line for line in printed), f"{_page_id(page)} did not print {expected!r}: {printed}"


def test_every_page_with_expected_output_has_blocks_that_run() -> None:
    assert set(EXPECTED_OUTPUT) <= {_page_id(page) for page in RUN_PAGES}


# ------------------------------------------------------------------------------------------------ shown in docs


def test_example_my_code_reads_every_post_of_a_day(genviral_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "genviral", "host": genviral_sandbox.url, "password": genviral_sandbox.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_DEFAULT", json.dumps(connection))

    rows = list(GenviralHook().iter_posts("2026-01-05", "2026-01-05"))

    assert len(rows) == 40
    assert {row["publishedAt"][:10] for row in rows} == {"2026-01-05"}


def test_example_my_code_survives_a_flaky_api(genviral_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "genviral", "host": genviral_sandbox.url, "password": genviral_sandbox.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_DEFAULT", json.dumps({**connection, "extra": {"max_retry_wait": 5}}))
    genviral_sandbox.faults.script = ["503", "429:1", "cut"]  # the next three requests fail, then all is well
    genviral_sandbox.insert_posts([{"genviralPostId": "my-post", "publishedAt": "2026-01-05T10:00:00.000Z"}])

    rows = list(GenviralHook().iter_posts("2026-01-05", "2026-01-05"))

    assert [row["genviralPostId"] for row in rows].count("my-post") == 1
    assert genviral_sandbox.stats.by_status[200] >= 1 and genviral_sandbox.stats.by_status[503] == 1
