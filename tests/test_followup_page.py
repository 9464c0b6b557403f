"""The approval page's follow-ups on the dev server: a follow-up run shown with its review,
post-mortem and action items; items added, marked done and dropped through the page's forms
(signed by the sign-in service, decided by the runbook: a refusal is shown and changes
nothing; four eyes on dropping); forms without their CSRF token refused; the index listing the
running follow-ups and their open items; and an item added and done in a real headless
Chromium."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.runs import Runs
from contracts import Severity
from contracts.post_incident import ActionItem, FollowupStatus, FollowupView, ItemStatus
from intake.followup_page import followups_section, render_followup
from tests.fakes import FakePlatform
from tests.identity import signing_client
from tests.policies import default_policy
from tests.test_approval_page import click_and_load, form_value, headless_chromium, require_chromium, sign_in_with
from tests.test_post_incident import FakeBucket, Followups, StandInIncident
from tests.test_signin import PASSWORDS, operator_app, serving
from workflows.incident_response import IncidentResponseWorkflow
from workflows.post_incident import PostIncidentWorkflow

HTML_TEXT = '<script>alert("x")</script> guard <b>deploys</b> & rollbacks'


@dataclass
class FollowupPage:
    url: str
    followups: Followups
    workflow_id: str
    incident_id: str

    @property
    def link(self) -> str:
        return f"/ui/incident?id={quote(self.workflow_id, safe='')}"

    async def view(self) -> FollowupView:
        handle = self.followups.client.get_workflow_handle(self.workflow_id)
        return await self.followups.view(handle)


@pytest.fixture
async def followup_page(dev_env: WorkflowEnvironment) -> AsyncIterator[FollowupPage]:
    """A follow-up awaiting its review on the dev server (started as the incident's child, by a
    stand-in incident), and the operator listener serving the page. alice is a responder and an
    approver, bob an approver, mallory a responder only."""
    policy = default_policy()
    policy = policy.model_copy(update={"responders": [*policy.responders, "mallory"]})
    platform, bucket = FakePlatform(policy), FakeBucket()
    task_queue = f"followup-page-{uuid.uuid4()}"
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[PostIncidentWorkflow, StandInIncident, IncidentResponseWorkflow],
        activities=[*platform.activities(), bucket.store_postmortem, *Runs(dev_env.client).all()],
    ):
        followups = Followups(dev_env, signing_client(dev_env.client), task_queue, policy, platform, bucket)
        handle = await followups.start(Severity.P1)
        view = await followups.until(handle, lambda v: v.status == FollowupStatus.REVIEW_PENDING)
        target = dev_env.client.service_client.config.target_host
        with serving(operator_app(target, task_queue, policy)) as url:
            yield FollowupPage(url, followups, handle.id, view.incident_id)
        if (await handle.describe()).status == 1:  # still running
            await handle.terminate("test done")


async def signed_in(http: httpx.AsyncClient, user: str) -> None:
    response = await http.post("/ui/login", data={"user": user, "password": PASSWORDS[user]})
    assert response.status_code == 303 and response.headers["location"] == "/ui"


async def submit(http: httpx.AsyncClient, page: FollowupPage, form: str, **fields: str) -> str:
    """Posts one of the follow-up's forms with the session's CSRF token; the page it leads to."""
    csrf = form_value((await http.get(page.link)).text, "csrf")
    answer = await http.post(f"/ui/action/{form}", data={"id": page.workflow_id, "csrf": csrf, **fields})
    assert answer.status_code == 303, answer.text
    return (await http.get(answer.headers["location"])).text


def message_of(text: str) -> str:
    return text.split('id="message">')[1].split("</p>")[0]


async def test_items_are_added_done_and_dropped_through_the_page_four_eyes_on_dropping(
    followup_page: FollowupPage,
) -> None:
    page = followup_page
    async with (
        httpx.AsyncClient(base_url=page.url, timeout=60) as alice,
        httpx.AsyncClient(base_url=page.url, timeout=60) as bob,
        httpx.AsyncClient(base_url=page.url, timeout=60) as mallory,
    ):
        for http, user in ((alice, "alice"), (bob, "bob"), (mallory, "mallory")):
            await signed_in(http, user)

        shown = (await alice.get(page.link)).text
        assert "Follow-up of " + page.incident_id in shown and 'id="no-items"' in shown
        assert f"s3://runbook-postmortems/postmortems/{page.incident_id}.md" in shown
        assert "pending, due" in shown.split('id="review">')[1].split("</td>")[0]

        added = await submit(alice, page, "add", owner="alice", text=HTML_TEXT, due="7d")
        assert message_of(added).startswith("A1 added: owner alice")
        assert HTML_TEXT not in added and "<script>" not in added  # the item's text, escaped
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; guard &lt;b&gt;deploys&lt;/b&gt; &amp;" in added
        view = await page.view()
        assert [(i.item_id, i.text, i.owner, i.added_by) for i in view.items] == [("A1", HTML_TEXT, "alice", "alice")]
        assert timedelta(days=7) - timedelta(minutes=5) < view.items[0].due - view.now <= timedelta(days=7)
        defaulted = await submit(mallory, page, "add", owner="bob", text="write the runbook's new step")
        assert message_of(defaulted).startswith("A2 added: owner bob")
        bad_due = await submit(alice, page, "add", owner="bob", text="x", due="5m")
        assert message_of(bad_due).startswith("refused: due_in")
        assert len((await page.view()).items) == 2  # P1's default: 30 days
        assert (await page.view()).items[1].due - view.now > timedelta(days=29)

        # done: its owner or an approver, with evidence; mallory is neither for A1
        not_hers = await submit(mallory, page, "done", item="A1", evidence="trust me")
        assert "refused: mallory may not close A1: only its owner alice or an approver" in message_of(not_hers)
        assert (await page.view()).items[0].status == ItemStatus.OPEN
        done = await submit(alice, page, "done", item="A1", evidence="https://git.example/pr/42")
        assert message_of(done) == "A1 done"
        a1 = (await page.view()).items[0]
        assert (a1.status, a1.closed_by, a1.evidence) == (ItemStatus.DONE, "alice", "https://git.example/pr/42")
        assert 'id="done-A1"' not in done and 'id="done-A2"' in done

        # drop: alice asks; neither alice again nor mallory (no approver) confirms; bob does
        asked = await submit(alice, page, "drop", item="A2", reason="the step is automated now")
        assert "A2: drop asked" in message_of(asked) and "Confirm drop (asked by alice)" in asked
        for http, refusal in (
            (alice, "alice asked to drop A2; another approver must confirm it (four eyes)"),
            (mallory, "mallory may not confirm dropping A2: not an approver"),
        ):
            text = await submit(http, page, "drop", item="A2", reason="yes, drop it")
            assert message_of(text).startswith("refused: " + refusal), message_of(text)
            a2 = (await page.view()).items[1]
            assert (a2.status, a2.drop_requested_by, a2.closed_by) == (ItemStatus.OPEN, "alice", None)
        dropped = await submit(bob, page, "drop", item="A2", reason="agreed")
        assert message_of(dropped) == "A2 dropped (asked by alice, confirmed by bob)"
        a2 = (await page.view()).items[1]
        assert (a2.status, a2.closed_by) == (ItemStatus.DROPPED, "bob")
        again = await submit(alice, page, "done", item="A2", evidence="late")
        assert message_of(again) == "refused: A2 is dropped already"


async def test_forms_without_their_csrf_token_change_nothing(followup_page: FollowupPage) -> None:
    page = followup_page
    async with httpx.AsyncClient(base_url=page.url, timeout=60) as anonymous:
        nobody = await anonymous.post("/ui/action/add", data={"id": page.workflow_id, "owner": "a", "text": "x"})
        assert nobody.status_code == 303 and nobody.headers["location"] == "/ui/login"
    async with httpx.AsyncClient(base_url=page.url, timeout=60) as alice:
        await signed_in(alice, "alice")
        added = await submit(alice, page, "add", owner="alice", text="keep")
        assert message_of(added).startswith("A1 added")
        for form, fields in (
            ("add", {"owner": "alice", "text": "forged"}),
            ("done", {"item": "A1", "evidence": "forged"}),
            ("drop", {"item": "A1", "reason": "forged"}),
        ):
            for csrf in ({}, {"csrf": "not-the-token"}):
                answer = await alice.post(f"/ui/action/{form}", data={"id": page.workflow_id, **fields, **csrf})
                assert answer.status_code == 403 and "CSRF" in answer.text, (form, csrf)
    view = await page.view()
    assert [(i.item_id, i.status, i.drop_requested_by) for i in view.items] == [("A1", ItemStatus.OPEN, None)]


async def test_the_index_lists_running_follow_ups_and_their_open_items(followup_page: FollowupPage) -> None:
    page = followup_page
    async with httpx.AsyncClient(base_url=page.url, timeout=60) as alice:
        await signed_in(alice, "alice")
        await submit(alice, page, "add", owner="bob", text="open <one>")
        await submit(alice, page, "add", owner="alice", text="closed one")
        await submit(alice, page, "done", item="A2", evidence="done")
        index = (await alice.get("/ui")).text
    followups = index.split('id="followups">')[1].split("</table>")[0]
    assert page.link.replace("/ui/incident?id=", "") in followups and page.incident_id in followups
    open_items = index.split('id="open-items">')[1].split("</table>")[0]
    mine = [row for row in open_items.split("<tr>") if page.incident_id in row]
    assert len(mine) == 1 and "open &lt;one&gt;" in mine[0] and ">A1<" in mine[0] and ">open<" in mine[0]


def test_an_overdue_item_the_review_and_the_post_mortem_show_as_overdue() -> None:
    """Rendering only: the run's clock (`view.now`) past the due dates, as a run reads after
    waiting days (the dev server cannot wait them; tests/test_post_incident.py runs the timers)."""
    opened = datetime(2026, 12, 4, 12, tzinfo=UTC)

    def item(item_id: str, due_in: timedelta, text: str) -> ActionItem:
        return ActionItem(
            item_id=item_id, text=text, owner="bob", due=opened + due_in, added_by="alice", added_at=opened
        )

    view = FollowupView(
        workflow_id="postincident/INC-1",
        incident_id="INC-1",
        incident_workflow_id="incident/hybrid-router/eu-central-1",
        service="hybrid-router",
        severity=Severity.P1,
        status=FollowupStatus.REVIEW_PENDING,
        opened_at=opened,
        opened_by="runbook",
        commander="alice",
        review_due=opened + timedelta(hours=2),
        postmortem_due=opened + timedelta(days=2),
        items=[item("A1", timedelta(days=1), "late one"), item("A2", timedelta(days=30), "later one")],
        now=opened + timedelta(days=3),
    )
    shown = render_followup(view, "token", None)
    a1, a2 = (shown.split(f'id="item-{i}">')[1].split("</tr>")[0] for i in ("A1", "A2"))
    assert 'class="state overdue">OVERDUE' in a1 and 'class="state">open' in a2
    assert "OVERDUE" in shown.split('id="review">')[1].split("</td>")[0]
    assert "OVERDUE" in shown.split('id="postmortem">')[1].split("</td>")[0]
    listed = followups_section([view]).split('id="open-items">')[1]
    assert listed.index("late one") < listed.index("later one") and listed.count("OVERDUE") == 1
    on_time = render_followup(view.model_copy(update={"now": opened + timedelta(minutes=5)}), "token", None)
    assert "OVERDUE" not in on_time


async def test_an_item_added_and_done_in_a_real_browser(followup_page: FollowupPage) -> None:
    paths = require_chromium()
    page = followup_page
    from selenium.webdriver.common.by import By

    def click_through() -> list[str]:
        with headless_chromium(paths) as browser:
            sign_in_with(browser, page.url, "alice")
            links = browser.find_elements(By.CSS_SELECTOR, "#followups a.followup")
            click_and_load(browser, next(link for link in links if link.text == page.incident_id))
            assert browser.find_element(By.ID, "status").text == "status: review-pending"
            browser.find_element(By.ID, "item-owner").send_keys("alice")
            browser.find_element(By.ID, "item-due").send_keys("10d")
            browser.find_element(By.ID, "item-text").send_keys("page deploy guards <now>")
            click_and_load(browser, browser.find_element(By.ID, "add-item"))
            messages = [browser.find_element(By.ID, "message").text]
            assert browser.find_element(By.CSS_SELECTOR, "#item-A1 .text").text == "page deploy guards <now>"
            assert browser.find_element(By.CSS_SELECTOR, "#item-A1 .state").text == "open"
            browser.find_element(By.ID, "evidence-A1").send_keys("https://git.example/pr/7")
            click_and_load(browser, browser.find_element(By.ID, "done-A1"))
            messages.append(browser.find_element(By.ID, "message").text)
            messages.append(browser.find_element(By.CSS_SELECTOR, "#item-A1 .state").text)
            return messages

    added, done, state = await asyncio.to_thread(click_through)
    assert added.startswith("A1 added: owner alice") and done == "A1 done" and state.startswith("done by alice")
    view = await page.view()
    [a1] = view.items
    assert (a1.text, a1.owner, a1.added_by) == ("page deploy guards <now>", "alice", "alice")
    assert (a1.status, a1.closed_by, a1.evidence) == (ItemStatus.DONE, "alice", "https://git.example/pr/7")
    assert timedelta(days=10) - timedelta(minutes=5) < a1.due - a1.added_at <= timedelta(days=10)
    assert [e.actor for e in view.timeline if e.event in ("action item added", "action item done")] == [
        "alice",
        "alice",
    ]
