"""The approval page on the operator listener: sign-in, CSRF per session, refusals shown, and an
approval clicked in a real headless Chromium (Debian's chromium and chromium-driver) moving the
runbook on, signed by the sign-in service and verified by the runbook."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from temporalio.client import WorkflowHandle

from contracts import Acknowledge
from intake.sessions import COOKIE
from tests.fakes import eventually
from tests.identity import signing_client
from tests.test_signin import (
    PASSWORDS,
    Incident,
    incident,  # noqa: F401 - a fixture, for `page`
    operator_app,
    serving,
)
from workflows.incident_response import IncidentResponseWorkflow


@dataclass
class Page:
    url: str
    handle: WorkflowHandle
    workflow_id: str


@pytest.fixture
async def page(incident: Incident) -> AsyncIterator[Page]:  # noqa: F811 - the fixture imported above
    """An incident awaiting approval, and the operator listener serving the approval page."""
    signed = signing_client(incident.client).get_workflow_handle(incident.handle.id)  # as the sign-in service signs
    await signed.execute_update(IncidentResponseWorkflow.acknowledge, Acknowledge(by="alice"))
    await eventually(incident.view, lambda view: view.pending_approval is not None, "no approval proposed")
    with serving(operator_app(incident.target, incident.task_queue, incident.policy)) as url:
        yield Page(url=url, handle=incident.handle, workflow_id=incident.handle.id)


@contextlib.asynccontextmanager
async def signed_in(page: Page, user: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=page.url, follow_redirects=False, timeout=30) as http:
        response = await http.post("/ui/login", data={"user": user, "password": PASSWORDS[user]})
        assert response.status_code == 303 and response.headers["location"] == "/ui"
        yield http


async def test_sign_in_is_required_and_forms_need_their_csrf_token(page: Page) -> None:
    async with httpx.AsyncClient(base_url=page.url, follow_redirects=False) as anonymous:
        assert (await anonymous.get("/ui")).headers["location"] == "/ui/login"
        wrong = await anonymous.post("/ui/login", data={"user": "bob", "password": "guess"})
        assert "wrong+name+or+password" in wrong.headers["location"]
        assert (await anonymous.post("/ui/approve", data={"id": page.workflow_id})).status_code == 303  # to login

    async with signed_in(page, "bob") as http:
        listing = await http.get("/ui")
        assert page.workflow_id.replace("/", "%2F") in listing.text and "roll " in listing.text
        view = await page.handle.query(IncidentResponseWorkflow.view)
        forged = await http.post(
            "/ui/approve",
            data={"id": page.workflow_id, "plan_id": view.pending_approval.plan_id, "csrf": "not-the-token"},
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
    still = await page.handle.query(IncidentResponseWorkflow.view)
    assert still.pending_approval is not None and still.decision is None


FORM_ROUTES = {
    "/ui/approve": {"plan_id": "p", "comment": "forged"},
    "/ui/reject": {"plan_id": "p", "reason": "forged"},
    "/ui/acknowledge": {"note": "forged"},
    "/ui/comment": {"text": "forged comment"},
    "/ui/action/add": {"owner": "bob", "text": "forged item", "due": "2030-01-01"},
    "/ui/action/done": {"item": "A1", "evidence": "forged"},
    "/ui/action/drop": {"item": "A1", "reason": "forged"},
}


async def test_every_form_route_refuses_a_missing_or_another_sessions_csrf_token(page: Page) -> None:
    """Each of the console's POST routes checks the session's CSRF token before anything else: a
    form without one, or with another session's, is a 403 and the run's timeline is unchanged."""
    link = f"/ui/incident?id={quote(page.workflow_id, safe='')}"
    before = await page.handle.query(IncidentResponseWorkflow.view)
    async with signed_in(page, "bob") as mine, signed_in(page, "bob") as other:
        theirs = form_value((await other.get(link)).text, "csrf")
        plan_id = before.pending_approval.plan_id
        for route, fields in FORM_ROUTES.items():
            data = {"id": page.workflow_id, **fields, **({"plan_id": plan_id} if "plan_id" in fields else {})}
            for csrf in (None, "", theirs):
                sent = data if csrf is None else {**data, "csrf": csrf}
                answer = await mine.post(route, data=sent)
                assert answer.status_code == 403 and "CSRF" in answer.text, (route, csrf, answer.status_code)
        shown = (await mine.get(link)).text
        assert form_value(shown, "run") == (await page.handle.describe()).run_id  # the forms name the run shown
        csrf = form_value(shown, "csrf")
        for run in ("../x", "not-a-run"):
            bad = await mine.post("/ui/comment", data={"id": page.workflow_id, "run": run, "csrf": csrf, "text": "x"})
            assert bad.status_code == 400 and "run: " in bad.text
    after = await page.handle.query(IncidentResponseWorkflow.view)
    assert after.timeline == before.timeline and after.decision is None and after.pending_approval is not None


def form_value(text: str, name: str) -> str:
    return text.split(f'name="{name}" value="')[1].split('"')[0]


async def test_a_refusal_is_shown_and_changes_nothing(page: Page) -> None:
    async with signed_in(page, "mallory") as http:
        detail = await http.get(f"/ui/incident?id={quote(page.workflow_id, safe='')}")
        csrf, plan_id = form_value(detail.text, "csrf"), form_value(detail.text, "plan_id")
        answer = await http.post("/ui/approve", data={"id": page.workflow_id, "plan_id": plan_id, "csrf": csrf})
        shown = await http.get(answer.headers["location"])
    assert "refused: mallory may not approve" in shown.text
    assert (await page.handle.query(IncidentResponseWorkflow.view)).pending_approval is not None


async def test_csrf_tokens_are_per_session_and_sign_out_revokes_the_session(page: Page) -> None:
    """Two sign-ins of one person are two sessions: a form of one is refused in the other, and
    signing out of one ends it at once (its cookie, replayed, signs nobody in)."""
    link = f"/ui/incident?id={quote(page.workflow_id, safe='')}"
    async with signed_in(page, "bob") as first, signed_in(page, "bob") as second:
        one, two = [form_value((await http.get(link)).text, "csrf") for http in (first, second)]
        assert one != two
        plan_id = form_value((await first.get(link)).text, "plan_id")
        crossed = await second.post("/ui/approve", data={"id": page.workflow_id, "plan_id": plan_id, "csrf": one})
        assert crossed.status_code == 403 and "CSRF" in crossed.text
        still = await page.handle.query(IncidentResponseWorkflow.view)
        assert still.pending_approval is not None and still.decision is None

        cookie = first.cookies[COOKIE]
        assert (await first.post("/ui/logout", data={"csrf": "not-it"})).status_code == 403  # a forged sign-out
        out = await first.post("/ui/logout", data={"csrf": one})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    async with httpx.AsyncClient(base_url=page.url, cookies={COOKIE: cookie}) as replayed:
        assert (await replayed.get(link)).headers["location"] == "/ui/login"
        late = await replayed.post("/ui/approve", data={"id": page.workflow_id, "plan_id": plan_id, "csrf": one})
        assert late.status_code == 303 and late.headers["location"] == "/ui/login"
    assert (await page.handle.query(IncidentResponseWorkflow.view)).decision is None


def chromium_paths() -> tuple[str, str] | None:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def require_chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver; the test is skipped without them (failed under CI)."""
    paths = chromium_paths()
    if paths is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are missing; .ci/run installs them (Debian packages)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    return paths


@contextlib.contextmanager
def headless_chromium(paths: tuple[str, str]) -> Iterator[Any]:
    """A real headless Chromium with a throwaway profile (selenium's webdriver; blocking: drive
    it from a thread). Every lookup waits for the page the last click loads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    browser.implicitly_wait(20)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def click_and_load(browser: Any, element: Any) -> None:
    """Clicks a link or a form's button and waits until the page it leads to has replaced this
    one: an element looked up right after the click may otherwise be the old page's, gone (stale)
    a moment later (it failed so in CI). The old page is marked in its window object, which a
    navigation replaces; while the page changes, Chrome may answer any command with an error
    (stale element, "node does not belong to the document"), so errors count as "not yet"."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("window.__runbookOldPage = true;")
    element.click()

    def loaded(driver: Any) -> bool:
        return bool(
            driver.execute_script("return window.__runbookOldPage === undefined && document.readyState === 'complete';")
        )

    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(loaded)


def sign_in_with(browser: Any, url: str, user: str) -> None:
    """Opens the page, which asks for a sign-in, and signs `user` in with the password form."""
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/ui")
    browser.find_element(By.ID, "login-user").send_keys(user)
    browser.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
    click_and_load(browser, browser.find_element(By.ID, "login"))
    assert browser.find_element(By.ID, "user").text == user


async def test_approve_in_a_real_browser_and_the_runbook_moves_on(page: Page) -> None:
    paths = require_chromium()
    from selenium.webdriver.common.by import By

    def click_through() -> str:
        with headless_chromium(paths) as browser:
            sign_in_with(browser, page.url, "bob")
            click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "#pending a.incident"))
            assert "Awaiting approval" in browser.find_element(By.ID, "plan").text
            click_and_load(browser, browser.find_element(By.ID, "approve"))
            message = browser.find_element(By.ID, "message").text
            deadline = time.monotonic() + 60
            moved_on = ("remediating", "verifying", "resolved")
            while not any(word in browser.find_element(By.ID, "status").text for word in moved_on):
                assert time.monotonic() < deadline, browser.find_element(By.ID, "status").text
                time.sleep(0.5)
                browser.refresh()
            return str(message)

    message = await asyncio.to_thread(click_through)
    assert "approved by bob" in message
    # the page shows "remediating" as the run enters it, before the rollback's activity returns
    view = await eventually(
        lambda: page.handle.query(IncidentResponseWorkflow.view),
        lambda view: view.remediation is not None,
        "the rollback was never recorded",
        timeout=30,
        shown=lambda view: (view.status, view.timeline[-3:]),
    )
    assert view.decision is not None and view.decision.approved and view.decision.by == "bob"
    assert view.remediation is not None and view.remediation.changed  # the rollback was carried out
    assert any(e.event == "approved" and e.actor == "bob" for e in view.timeline)
