"""Check the built distribution (`make dist`): what the sdist and wheel hold, then the wheel installed in Airflow.

    python scripts/check_dist.py archives dist/
    python scripts/check_dist.py installed .venv/dist-check

`archives` reads the files in `dist/`: one sdist and one wheel of this version, the licence, the provider entry
point and no other, no tests. `installed` runs the clean virtualenv's `airflow` (in a throwaway AIRFLOW_HOME, from
outside the repository, without PYTHONPATH) and checks that it lists the provider and discovers the hook.
Exits non-zero naming the first thing wrong.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from email.parser import Parser

REPO = pathlib.Path(__file__).resolve().parents[1]
DISTRIBUTION = "airflow-provider-genviral"
PACKAGE = "genviral_provider"
HOOK_CLASS = "genviral_provider.hooks.genviral.GenviralHook"


class DistError(Exception):
    """Something the distribution gets wrong."""


def version() -> str:
    """Return the version the sources declare (``genviral_provider.__version__``), without importing them."""
    for line in (REPO / PACKAGE / "__init__.py").read_text().splitlines():
        if line.startswith("__version__ = "):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise DistError(f"no __version__ in {PACKAGE}/__init__.py")


def check_archives(folder: pathlib.Path) -> list[str]:
    """Check the sdist and the wheel in ``folder``; return what was checked, one line each."""
    expected = version()
    wheels, sdists = sorted(folder.glob("*.whl")), sorted(folder.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise DistError(f"expected one wheel and one sdist in {folder}, found {[p.name for p in [*wheels, *sdists]]}")
    wheel, sdist = wheels[0], sdists[0]
    stem = f"airflow_provider_genviral-{expected}"
    if not wheel.name.startswith(stem + "-") or sdist.name != stem + ".tar.gz":
        raise DistError(f"{wheel.name} / {sdist.name} do not carry version {expected}")
    return [*_check_wheel(wheel, expected), *_check_sdist(sdist, stem)]


def _check_wheel(wheel: pathlib.Path, expected: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"airflow_provider_genviral-{expected}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
    _require(metadata["Name"] == DISTRIBUTION, f"wheel Name is {metadata['Name']!r}")
    _require(metadata["Version"] == expected, f"wheel Version is {metadata['Version']!r}, not {expected}")
    _require(metadata["License-Expression"] == "Apache-2.0", "wheel has no License-Expression Apache-2.0")
    _require(f"{info}/licenses/LICENSE" in names, "wheel does not ship LICENSE")
    requires = metadata.get_all("Requires-Dist") or []
    _require("apache-airflow>=3.0.6" in requires, f"wheel does not require apache-airflow>=3.0.6: {requires}")
    _require(
        dict(entry_points.items("apache_airflow_provider")) == {"provider_info": f"{PACKAGE}:get_provider_info"},
        "wheel's apache_airflow_provider entry point is not provider_info = genviral_provider:get_provider_info",
    )
    _require(
        entry_points.sections() == ["apache_airflow_provider"], f"unexpected entry points: {entry_points.sections()}"
    )
    packages = {name.split("/", 1)[0] for name in names if not name.startswith(info)}
    _require(packages == {PACKAGE}, f"wheel holds more than {PACKAGE}/: {sorted(packages)}")
    _require(f"{PACKAGE}/py.typed" in names, "wheel does not ship py.typed")
    return [
        f"{wheel.name}: {len(names)} files, Requires-Dist {', '.join(r for r in requires if 'extra ==' not in r)}",
        f"{wheel.name}: License-Expression Apache-2.0 with LICENSE; entry point apache_airflow_provider only",
    ]


def _check_sdist(sdist: pathlib.Path, stem: str) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(stem + "/") for name in archive.getnames()}
    for required in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", f"{PACKAGE}/__init__.py"):
        _require(required in names, f"sdist lacks {required}")
    return [f"{sdist.name}: {len(names)} entries, with LICENSE, README.md, CHANGELOG.md"]


def check_installed(venv: pathlib.Path) -> list[str]:
    """Check that the ``airflow`` of a virtualenv lists the provider and discovers its hook."""
    expected = version()
    venv = venv.absolute()  # the commands below run in another directory
    with tempfile.TemporaryDirectory(prefix="genviral-dist-check-") as home:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "PYTHON"))}
        env |= {"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        where = _run([str(venv / "bin" / "python"), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], env, home)
        # The clean virtualenv may live inside the repository (.venv/dist-check): what counts is its site-packages.
        installed = where.startswith(str(venv)) and "site-packages" in where
        _require(installed, f"{PACKAGE} was not imported from {venv}'s site-packages (the wheel): {where}")
        started = time.monotonic()
        providers = json.loads(_run([str(venv / "bin" / "airflow"), "providers", "list", "-o", "json"], env, home))
        listed = {entry["package_name"]: entry["version"] for entry in providers}
        _require(
            listed.get(DISTRIBUTION) == expected,
            f"`airflow providers list` shows {DISTRIBUTION}={listed.get(DISTRIBUTION)}",
        )
        hooks = json.loads(_run([str(venv / "bin" / "airflow"), "providers", "hooks", "-o", "json"], env, home))
        genviral = [hook for hook in hooks if hook.get("connection_type") == "genviral"]
        _require(
            len(genviral) == 1 and genviral[0].get("class") == HOOK_CLASS,
            f"`airflow providers hooks` does not map connection type genviral to {HOOK_CLASS}: {genviral}",
        )
        seconds = time.monotonic() - started
    return [
        f"installed from the wheel: {where.strip()}",
        f"`airflow providers list`: {DISTRIBUTION} {expected}; `airflow providers hooks`: genviral -> {HOOK_CLASS} "
        f"({seconds:.0f} s)",
    ]


def _run(command: list[str], env: dict[str, str], cwd: str) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise DistError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise DistError(problem)


def main(argv: list[str] | None = None) -> int:
    """Run one check; print what it checked, or the problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("check", choices=["archives", "installed"])
    parser.add_argument("path", type=pathlib.Path, help="dist/ for archives, the clean virtualenv for installed")
    arguments = parser.parse_args(argv)
    try:
        lines = check_archives(arguments.path) if arguments.check == "archives" else check_installed(arguments.path)
    except DistError as problem:
        print(f"check_dist {arguments.check}: {problem}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"ok  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
