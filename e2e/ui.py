"""The Airflow UI's connection form in headless Chromium (Debian's, driven by Playwright), as an admin uses it.

Log in, add a Genviral connection through the form (checking the type is offered with its relabelled and extra
fields), add a second one with a wrong key, then press each row's Test button and read the toast. On Airflow 3.3.2,
whose Test button fails for every port-less connection (apache/airflow#73298), check that failure as users see it
and the documented workaround, ``airflow connections test``. Screenshots go to ``<output>/screenshots/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, sync_playwright

from e2e.checks import CheckResult
from e2e.deployment import Deployment

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STANDARD_LABELS = ("Base URL", "API key")
EXTRA_LABELS = ("Request timeout (seconds)", "Max retries", "Max retry wait (seconds)", "Max concurrency")
HIDDEN_LABELS = ("Host", "Password", "Login", "Port", "Schema")
GOOD, BAD = "genviral_ui_good", "genviral_ui_bad"
TIMEOUT_MS = 30_000


def run_ui_checks(deployment: Deployment) -> list[CheckResult]:
    """Check the form and both Test results; return the results.

    On an Airflow with apache/airflow#73298 (3.3.2), the UI's Test button fails for every connection without a
    port, before the provider is called: the run checks that users see that failure, and that the documented
    workaround (``airflow connections test``) tests both connections.
    """
    shots = deployment.layout.screenshots
    bug = _airflow_has_port_bug(deployment)
    with _browser() as page:
        _log_in(page, deployment)
        results = [_form_offers_genviral(page, deployment, shots)]
        _add_connection(page, BAD, deployment.sandbox.url, "gva_live_wrong.n0tth3k3y")
        if bug:
            results.append(_test_button_hits_the_port_bug(page, GOOD, shots))
        else:
            results.append(_test_button(page, GOOD, shots, success=True))
            results.append(_test_button(page, BAD, shots, success=False))
    if bug:
        results += [_cli_test(deployment, GOOD, success=True), _cli_test(deployment, BAD, success=False)]
    return results


def _airflow_has_port_bug(deployment: Deployment) -> bool:
    """Say whether the installed Airflow has apache/airflow#73298's bug (port 0 is not the stored blank port)."""
    probe = "from airflow.api_fastapi.core_api.routes.public.connections import _same_endpoint as s; print(s(0, None))"
    return deployment.cli.python("-c", probe).stdout.strip().endswith("False")


def _test_button_hits_the_port_bug(page: Page, connection_id: str, shots: Path) -> CheckResult:
    """On Airflow 3.3.2 the Test button fails for a port-less connection with the API server's 400, as users see."""
    name = "UI: Test button on Airflow 3.3.2 fails as users see it (apache/airflow#73298; workaround documented)"
    text = _press_test(page, connection_id, shots)
    problems = []
    if not text.startswith("Test Connection Failed") or "Bad Request" not in text:
        problems.append(f"expected 'Test Connection Failed Bad Request' (the API server's 400), found {text!r}")
    return CheckResult.of(name, problems, f"toast: {text!r}; docs/troubleshooting.md gives the CLI workaround")


def _cli_test(deployment: Deployment, connection_id: str, *, success: bool) -> CheckResult:
    """The documented workaround: ``airflow connections test`` reports success, or the refused key, clearly."""
    name = f"CLI: airflow connections test, {'good key succeeds' if success else 'bad key fails clearly'}"
    result = deployment.cli.run("connections", "test", connection_id, check=False)
    output = " ".join((result.stdout + result.stderr).split())
    problems = []
    if success and (result.returncode != 0 or "Connection success!" not in output):
        problems.append(f"expected 'Connection success!', found exit {result.returncode}: {output[-500:]!r}")
    # The CLI prints through rich: the error code must survive it (it would swallow a "[invalid_token]" as markup).
    refused = "HTTP 401 invalid_token: API key not found"
    if not success and (result.returncode == 0 or refused not in output):
        problems.append(f"expected a failure naming the 401, found exit {result.returncode}: {output[-500:]!r}")
    return CheckResult.of(name, problems, output[-300:])


@contextlib.contextmanager
def _browser() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _log_in(page: Page, deployment: Deployment) -> None:
    page.goto(f"{deployment.settings.api_url}/connections")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(deployment.settings.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/connections")


def _form_offers_genviral(page: Page, deployment: Deployment, shots: Path) -> CheckResult:
    """The form offers the Genviral type, relabels host and password, shows the extras, hides the rest."""
    name = "UI: connection form offers Genviral"
    dialog = _open_form(page, GOOD)
    offered = _choose_genviral(page, dialog)
    if "Genviral" not in offered:
        page.screenshot(path=str(shots / "connection-form-no-genviral.png"))
        return CheckResult(name, False, f"expected 'Genviral' among the connection types, found {offered}")
    standard = _labels(dialog)
    _fill(dialog, deployment.sandbox.url, deployment.api_key)
    key_type = dialog.get_by_label("API key").get_attribute("type")
    page.screenshot(path=str(shots / "connection-form-standard.png"))
    # Up to Airflow 3.3 the extras fold behind a button; 3.4 shows them, under "Genviral Fields".
    extra_fields = dialog.get_by_role("button", name="Extra Fields", exact=True)
    extra_fields.or_(dialog.get_by_text("Genviral Fields", exact=True)).first.wait_for()
    if extra_fields.count():
        extra_fields.click()
    extras = _labels(dialog)
    page.screenshot(path=str(shots / "connection-form-extras.png"))
    _save(page, dialog, GOOD)
    return CheckResult.of(
        name,
        _form_problems(standard, extras, key_type),
        f"type 'Genviral' with fields {', '.join(STANDARD_LABELS)} (key masked) and extras {', '.join(EXTRA_LABELS)}; "
        f"{', '.join(HIDDEN_LABELS)} hidden; saved {GOOD}",
    )


def _form_problems(standard: list[str], extras: list[str], key_type: str | None) -> list[str]:
    problems = [f"expected the field {label!r}, found {standard}" for label in STANDARD_LABELS if label not in standard]
    problems += [f"expected the extra field {label!r}, found {extras}" for label in EXTRA_LABELS if label not in extras]
    problems += [f"expected {label!r} hidden, found it shown" for label in HIDDEN_LABELS if label in standard]
    if key_type != "password":
        problems.append(f"expected the API key input to be a password field, found type={key_type!r}")
    return problems


def _open_form(page: Page, connection_id: str) -> Locator:
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(connection_id)
    return dialog


def _choose_genviral(page: Page, dialog: Locator) -> list[str]:
    """Type 'Genviral' into the type picker; pick it if offered; return the options offered."""
    combo = dialog.get_by_role("combobox")
    combo.click()
    combo.fill("Genviral")
    offered = [option.inner_text() for option in page.get_by_role("option").all()]
    if "Genviral" in offered:
        page.get_by_role("option", name="Genviral", exact=True).click()
    return offered


def _fill(dialog: Locator, base_url: str, key: str) -> None:
    dialog.get_by_label("Base URL").fill(base_url)
    dialog.get_by_label("API key").fill(key)


def _save(page: Page, dialog: Locator, connection_id: str) -> None:
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text=connection_id).wait_for()


def _labels(dialog: Locator) -> list[str]:
    return [label.inner_text().replace("*", "").strip() for label in dialog.locator("label").all()]


def _add_connection(page: Page, connection_id: str, base_url: str, key: str) -> None:
    dialog = _open_form(page, connection_id)
    _choose_genviral(page, dialog)
    _fill(dialog, base_url, key)
    _save(page, dialog, connection_id)


def _dismiss(toast: Locator) -> None:
    """Close a toast (or wait for it to go), so that the next toast found is the next test's."""
    with contextlib.suppress(PlaywrightError):
        toast.get_by_role("button").first.click(timeout=2_000)
    with contextlib.suppress(PlaywrightError):
        toast.wait_for(state="detached", timeout=10_000)


def _press_test(page: Page, connection_id: str, shots: Path) -> str:
    """Press the row's Test button; return the toast's text (a screenshot is taken)."""
    row = page.get_by_role("row").filter(has_text=connection_id)
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection").last
    toast.wait_for()
    text = " ".join(toast.inner_text().split())
    page.wait_for_timeout(600)  # let the toast finish sliding in before the screenshot
    page.screenshot(path=str(shots / f"test-{connection_id}.png"))
    _dismiss(toast)
    return text


def _test_button(page: Page, connection_id: str, shots: Path, *, success: bool) -> CheckResult:
    """Press the row's Test button; the toast reports success, or a failure that says what is wrong."""
    name = f"UI: Test button, {'good key reports success' if success else 'bad key reports a clear failure'}"
    text = _press_test(page, connection_id, shots)
    expected = "Test Connection Successful" if success else "Test Connection Failed"
    problems = [] if text.startswith(expected) else [f"expected a toast '{expected} ...', found {text!r}"]
    if not success and not any(word in text for word in ("401", "API key", "invalid_token")):
        problems.append(f"expected the failure to say the key was refused (401 / invalid_token), found {text!r}")
    return CheckResult.of(name, problems, f"toast: {text!r}")
