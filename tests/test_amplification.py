"""Issue 9, amplification: what one alert may carry into a run, and alerts of one target
coalesced into one hand-over (`intake.coalesce`).

The coalescer's rules on a fake hand-over; then the largest request the intake accepts, sent
many times through the real intake into a real run on the dev server, whose history stays
far from Temporal's limits (50 MB, 51 200 events; it warns at 10 MB and 10 240)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts import MAX_BATCH_ALERTS, MAX_BATCH_BYTES, Alert
from intake.app import IntakeConfig
from intake.coalesce import BRIEF_SUMMARY, Coalescer, Waiting, approximate_size, brief, take_batch
from intake.handoff import Unavailable
from intake.normalize import MAX_LABELS_BYTES, cap_labels
from tests.policies import default_policy
from tests.test_intake import running_intake

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def an_alert(n: int, status: Literal["firing", "resolved"] = "firing", service: str = "svc", **fields: Any) -> Alert:
    return Alert(
        source="alertmanager",
        service=service,
        region="eu-west-1",
        summary=fields.pop("summary", f"alert {n}"),
        status=status,
        labels=fields.pop("labels", {"alertname": "Busy", "instance": f"10.0.0.{n}"}),
        received_at=NOW,
        delivery_id=fields.pop("delivery_id", f"d-{n}-{status}"),
        fingerprint=fields.pop("fingerprint", f"f-{n}"),
        **fields,
    )


class HeldHandoff:
    """A hand-over that records each batch and can be held, to see what queues behind it."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Alert], bool]] = []
        self.run_ids: list[str | None] = []  # the run each hand-over was aimed at, if known
        self.release = asyncio.Event()
        self.release.set()
        self.run_id = "run-1"
        self.running = True  # whether a plain signal finds a run
        self.fail: Exception | None = None
        self.failing = "incident/svc/eu-west-1"  # the target whose hand-overs fail when `fail` is set

    async def batch(
        self,
        workflow_id: str,
        alerts: list[Alert],
        opened_by: str,
        start: bool,
        runbook: str = "incident",
        run_id: str | None = None,
    ) -> tuple[bool, str | None]:
        self.batches.append((workflow_id, alerts, start))
        self.run_ids.append(run_id)
        await self.release.wait()
        if self.fail is not None and workflow_id == self.failing:
            raise self.fail
        if start:
            return True, self.run_id
        return self.running, None


def coalescer(handoff: HeldHandoff, **options: Any) -> Coalescer:
    return Coalescer(handoff, window=0, **options)  # type: ignore[arg-type]  # the duck-typed hand-over


# --------------------------------------------------------------------------- coalescing


async def test_alerts_arriving_during_a_hand_over_go_together_in_the_next() -> None:
    handoff = HeldHandoff()
    lanes = coalescer(handoff)
    handoff.release.clear()
    first = asyncio.create_task(lanes.hand_over(an_alert(0), "intake/alertmanager"))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(lanes.hand_over(an_alert(n), "intake/alertmanager")) for n in range(1, 30)]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(task.done() for task in rest)  # nobody answered before Temporal took it
    handoff.release.set()
    joined = await asyncio.gather(first, *rest)
    assert set(joined) == {"incident/svc/eu-west-1"}
    assert [len(alerts) for _, alerts, _ in handoff.batches] == [1, 29]
    assert [a.summary for a in handoff.batches[1][1]] == [f"alert {n}" for n in range(1, 30)]  # in arrival order
    assert handoff.run_ids == [None, "run-1"]  # the second goes to the run the first reached


async def test_a_failed_hand_over_fails_every_alert_it_carried_and_no_other() -> None:
    handoff = HeldHandoff()
    lanes = coalescer(handoff)
    handoff.release.clear()
    handoff.fail = Unavailable("Temporal did not take the alerts")
    waiting = [asyncio.create_task(lanes.hand_over(an_alert(n), "intake/alertmanager")) for n in range(3)]
    other = asyncio.create_task(lanes.hand_over(an_alert(9, service="other"), "intake/alertmanager"))
    await asyncio.sleep(0.01)
    handoff.release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    assert await other == "incident/other/eu-west-1"
    assert not lanes.lanes  # every lane ended: nothing left behind to hand over later


async def test_at_most_max_in_flight_hand_overs_at_once_and_what_waits_for_a_slot_coalesces() -> None:
    """Two slots, four targets: the third and fourth targets wait; what arrives for them
    meanwhile goes in their one hand-over once a slot frees."""
    handoff = HeldHandoff()
    lanes = coalescer(handoff, max_in_flight=2)
    handoff.release.clear()
    services = ["a", "b", "c", "d"]
    first = [asyncio.create_task(lanes.hand_over(an_alert(0, service=s), "intake/am")) for s in services]
    await asyncio.sleep(0.01)
    assert [w for w, _, _ in handoff.batches] == ["incident/a/eu-west-1", "incident/b/eu-west-1"]
    more = [asyncio.create_task(lanes.hand_over(an_alert(n, service=s), "intake/am")) for n in (1, 2) for s in services]
    await asyncio.sleep(0.01)
    assert len(handoff.batches) == 2  # nobody else started while both slots were taken
    handoff.release.set()
    await asyncio.gather(*first, *more)
    sizes = {(w.split("/")[1], len(alerts)) for w, alerts, _ in handoff.batches}
    assert sizes == {("a", 1), ("b", 1), ("c", 3), ("d", 3), ("a", 2), ("b", 2)}, handoff.batches
    assert len(handoff.batches) == 6 and not lanes.lanes


async def test_a_lane_that_waits_too_long_for_a_slot_is_503_and_hands_nothing_over() -> None:
    handoff = HeldHandoff()
    lanes = coalescer(handoff, max_in_flight=1, slot_timeout=0.05)
    handoff.release.clear()
    held = asyncio.create_task(lanes.hand_over(an_alert(0, service="a"), "intake/am"))
    waiting = [asyncio.create_task(lanes.hand_over(an_alert(n, service="b"), "intake/am")) for n in range(3)]
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    assert "busy" in str(outcomes[0])
    handoff.release.set()
    assert await held == "incident/a/eu-west-1"
    assert [w for w, _, _ in handoff.batches] == ["incident/a/eu-west-1"]  # b's alerts were never handed over
    assert await lanes.hand_over(an_alert(5, service="b"), "intake/am") == "incident/b/eu-west-1"  # a retry is
    assert not lanes.lanes


def test_the_hand_overs_at_once_come_from_intake_max_handovers_and_a_bad_value_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IntakeConfig.from_env(default_policy()).max_handovers == 8
    monkeypatch.setenv("INTAKE_MAX_HANDOVERS", "32")
    assert IntakeConfig.from_env(default_policy()).max_handovers == 32
    for bad in ("0", "1001", "eight", "-3", "2.5"):
        monkeypatch.setenv("INTAKE_MAX_HANDOVERS", bad)
        with pytest.raises(ValueError, match="INTAKE_MAX_HANDOVERS"):
            IntakeConfig.from_env(default_policy())


async def test_resolutions_ahead_of_a_firing_alert_never_open_a_run() -> None:
    handoff = HeldHandoff()
    handoff.running = False
    lanes = coalescer(handoff)
    handoff.release.clear()
    blocker = asyncio.create_task(lanes.hand_over(an_alert(0), "intake/alertmanager"))
    await asyncio.sleep(0.01)
    queued = [
        asyncio.create_task(lanes.hand_over(an_alert(1, "resolved"), "intake/alertmanager")),
        asyncio.create_task(lanes.hand_over(an_alert(2, "resolved"), "intake/alertmanager")),
        asyncio.create_task(lanes.hand_over(an_alert(3), "intake/alertmanager")),
        asyncio.create_task(lanes.hand_over(an_alert(4, "resolved"), "intake/alertmanager")),
    ]
    handoff.release.set()
    await blocker
    joined = await asyncio.gather(*queued)
    _, resolutions, start = handoff.batches[1]
    assert not start and [a.summary for a in resolutions] == ["alert 1", "alert 2"]
    _, rest, start = handoff.batches[2]
    assert start and [a.status for a in rest] == ["firing", "resolved"]  # the run opens with a firing alert
    assert joined[:2] == [None, None]  # no run took them: "resolved without an open incident"
    assert joined[2:] == ["incident/svc/eu-west-1"] * 2


async def test_repeats_and_alerts_past_the_budget_go_brief_the_opening_one_whole() -> None:
    handoff = HeldHandoff()
    lanes = coalescer(handoff, full_alerts=3)
    long = "x" * 900
    await lanes.hand_over(an_alert(0, summary=long), "intake/alertmanager")
    assert not handoff.batches[-1][1][0].brief  # the opening alert: whole

    repeat = an_alert(0, summary=long, delivery_id="d-0-again")  # same fingerprint, same state, new delivery
    await lanes.hand_over(repeat, "intake/alertmanager")
    sent = handoff.batches[-1][1][0]
    assert sent.brief and sent.labels == {} and len(sent.summary) == BRIEF_SUMMARY
    assert sent.fingerprint == "f-0" and sent.delivery_id == "d-0-again"  # it still counts, fires and clears

    cleared = an_alert(0, "resolved", summary=long)  # a change of state is news: whole
    await lanes.hand_over(cleared, "intake/alertmanager")
    assert not handoff.batches[-1][1][0].brief

    for n in (1, 2):
        await lanes.hand_over(an_alert(n), "intake/alertmanager")
    assert [handoff.batches[-1][1][0].brief] == [True]  # the fourth whole alert would pass full_alerts=3

    handoff.run_id = "run-2"  # the target's incident closed and another opened: it knows nothing yet
    await lanes.hand_over(an_alert(7), "intake/alertmanager")  # opens run-2: whole
    await lanes.hand_over(an_alert(0, delivery_id="d-0-third", summary=long), "intake/alertmanager")
    assert not handoff.batches[-1][1][0].brief  # new to run-2


def test_a_batch_holds_at_most_its_count_and_about_its_bytes() -> None:
    loop = asyncio.new_event_loop()
    try:
        many = [Waiting(an_alert(n), loop.create_future()) for n in range(MAX_BATCH_ALERTS + 20)]
        assert len(take_batch(many)) == MAX_BATCH_ALERTS
        big = {f"label-{n}": "v" * 200 for n in range(9)}  # about 2 KiB each, as many as caps allow
        heavy = [Waiting(an_alert(n, labels=big, summary="s" * 1024), loop.create_future()) for n in range(100)]
        taken = take_batch(heavy)
        assert 1 < len(taken) < 100
        assert sum(approximate_size(w.alert) for w in taken) <= MAX_BATCH_BYTES
        assert len(json.dumps([w.alert.model_dump(mode="json") for w in taken])) <= MAX_BATCH_BYTES
        lone = [Waiting(an_alert(0, labels=big, summary="s" * 1024), loop.create_future())]
        assert len(take_batch(lone)) == 1
    finally:
        loop.close()


def test_labels_are_capped_naming_ones_first_and_saying_how_many_were_left_out() -> None:
    labels = {f"extra-{n:03d}": "v" * 300 for n in range(100)} | {"alertname": "Busy", "severity": "critical"}
    capped = cap_labels(labels)
    assert capped["alertname"] == "Busy" and capped["severity"] == "critical"
    assert sum(len(k) + len(v) for k, v in capped.items() if k != "labels_left_out") <= MAX_LABELS_BYTES
    assert all(len(v) <= 256 for v in capped.values())
    kept = len(capped) - 1
    assert capped["labels_left_out"] == str(len(labels) - kept)
    assert cap_labels({"a": "b"}) == {"a": "b"}


# --------------------------------------------------------------------------- the real thing


def largest_alertmanager_request(service: str, round_: str, limit: int = 1024 * 1024) -> bytes:
    """1000 alerts (the most a request may hold) sharing as many common labels as fit in the
    intake's body limit: every alert would carry them all into the run if nothing capped them."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "Storm", "instance": f"10.{n // 250}.{n % 250}.1"},
            "annotations": {"summary": f"storm alert {n} " + "s" * 200},
            "startsAt": "2026-11-24T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{round_}{n:05d}",
        }
        for n in range(1000)
    ]
    payload: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="Storm"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "runbooks",
        "groupLabels": {"alertname": "Storm"},
        "commonLabels": {"alertname": "Storm", "service": service},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    room = limit - len(json.dumps(payload)) - 64
    entry = len(json.dumps({"common_0000": "c" * 500})) - 2 + 2  # the pair and its ", "
    for n in range(room // entry):
        payload["commonLabels"][f"common_{n:04d}"] = "c" * 500
    body = json.dumps(payload).encode()
    assert limit - 1024 < len(body) <= limit
    return body


async def test_the_largest_request_many_times_keeps_the_run_far_from_temporals_limits(
    dev_env: WorkflowEnvironment,
) -> None:
    rounds = 6  # 6000 alerts, each of them distinct: the worst case for a run's history
    async with running_intake(dev_env) as intake:
        for n in range(rounds):
            body = largest_alertmanager_request(intake.service, f"r{n}")
            response = await intake.post("/v1/alerts/alertmanager", body)
            assert response.status_code == 202, response.text
            assert response.json()["accepted"] == 1000
        again = await intake.post("/v1/alerts/alertmanager", body)  # the sender's retry of the last
        assert again.json()["duplicates"] == 1000 and again.json()["accepted"] == 0
        # the same alerts again with a new start: repeats of known alerts, counted, carried brief
        repeat = json.loads(largest_alertmanager_request(intake.service, f"r{rounds - 1}"))
        for alert in repeat["alerts"]:
            alert["startsAt"] = "2026-11-24T10:05:00Z"
        assert (await intake.post("/v1/alerts/alertmanager", json.dumps(repeat).encode())).status_code == 202

        view = await intake.until(lambda v: v.alert_count == (rounds + 1) * 1000)
        assert view.status.value not in ("closed", "failed")
        description = await intake.client.get_workflow_handle(intake.workflow_id()).describe()
        info = description.raw_description.workflow_execution_info
        # Without the caps every alert carried about 850 KB of common labels: 5 GB. With them, and
        # no coalescing, about 4 KB and 4 events per alert: 28 MB and 28 000 events.
        assert info.history_size_bytes < 6 * 1024 * 1024, info.history_size_bytes
        assert info.history_length < 2000, info.history_length
        timeline = [entry.event for entry in view.timeline]
        assert timeline.count("alerts") >= rounds  # the counted rest of each batch: one entry each
        await intake.client.get_workflow_handle(intake.workflow_id()).terminate("amplification test")


def test_a_brief_alert_is_bounded() -> None:
    alert = brief(an_alert(1, summary="s" * 1024, labels={f"k{n}": "v" * 200 for n in range(9)}))
    assert alert.brief and approximate_size(alert) < 800
    assert approximate_size(alert) >= len(alert.model_dump_json()) * 0.8  # the estimate is honest
