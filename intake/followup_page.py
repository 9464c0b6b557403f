"""The approval page's follow-ups: an incident's follow-up run (review, post-mortem, action items
with forms to add one, mark one done, ask or confirm a drop) and, on the index, every running
follow-up and its open action items, overdue first.

The page only reads the run's `view` and sends the follow-up's own Updates (`add_action_item`,
`close_action_item`) through `intake.operations`, the same signed path as `runbook action`: who
may do what (the owner or an approver marks done; a second person, an approver, confirms a drop)
is the runbook's to decide, and its refusal is shown as it says it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from contracts.post_incident import ActionItem, FollowupView, ItemStatus
from starter import FOLLOWUP_TYPE


def e(value: Any) -> str:
    return html.escape(str(value))


def as_followup(workflow_type: str, view: Mapping[str, Any]) -> FollowupView | None:
    if workflow_type != FOLLOWUP_TYPE:
        return None
    try:
        return FollowupView.model_validate(view)
    except ValidationError:
        return None  # a follow-up's view of another shape: shown by the fields every view has


def run_link(workflow_id: str) -> str:
    return f"/ui/incident?id={quote(workflow_id, safe='')}"


def state_of(item: ActionItem, view: FollowupView) -> str:
    return "OVERDUE" if item.overdue(view.now) else item.status.value


# --------------------------------------------------------------------------- forms -> requests
# Each form's own fields, mapped to the Update's request; `how` comes from the form's address,
# never from the form, and `by` and `assertion` are the sign-in service's (Operations.act).


def add_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    due = str(form.get("due", "")).strip()
    return {"owner": str(form.get("owner", "")), "text": str(form.get("text", "")), "due_in": due or None}


def done_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"item_id": str(form.get("item", "")), "how": "done", "why": str(form.get("evidence", "")).strip()}


def drop_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"item_id": str(form.get("item", "")), "how": "drop", "why": str(form.get("reason", "")).strip()}


# --------------------------------------------------------------------------- one follow-up


def hidden(workflow_id: str, csrf: str, item_id: str | None = None) -> str:
    item = f'<input type="hidden" name="item" value="{e(item_id)}">' if item_id else ""
    return (
        f'<input type="hidden" name="id" value="{e(workflow_id)}">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">{item}'
    )


def item_forms(view: FollowupView, item: ActionItem, csrf: str) -> str:
    if item.status != ItemStatus.OPEN:
        return ""
    fields = hidden(view.workflow_id, csrf, item.item_id)
    i = e(item.item_id)
    drop_label = f"Confirm drop (asked by {e(item.drop_requested_by)})" if item.drop_requested_by else "Ask to drop"
    return (
        f'<form method="post" action="/ui/action/done">{fields}'
        f'<input name="evidence" id="evidence-{i}" required placeholder="evidence (a link, a change, a ticket)">'
        f'<button id="done-{i}">Done</button></form>'
        f'<form method="post" action="/ui/action/drop">{fields}'
        f'<input name="reason" id="reason-{i}" required placeholder="reason">'
        f'<button id="drop-{i}">{drop_label}</button></form>'
    )


def item_row(view: FollowupView, item: ActionItem, csrf: str) -> str:
    state = state_of(item, view)
    closed = f" by {item.closed_by} {item.closed_at:%Y-%m-%d %H:%M}" if item.closed_by and item.closed_at else ""
    note = item.evidence or item.drop_reason or ""
    if item.status == ItemStatus.OPEN and item.drop_requested_by:
        note = f"drop asked by {item.drop_requested_by}: {item.drop_reason}"
    return (
        f'<tr id="item-{e(item.item_id)}"><td>{e(item.item_id)}</td><td class="text">{e(item.text)}</td>'
        f"<td>{e(item.owner)}</td><td>{item.due:%Y-%m-%d %H:%M}</td>"
        f'<td class="state{" overdue" if state == "OVERDUE" else ""}">{e(state)}{e(closed)}</td>'
        f"<td>{e(note)}</td>"
        f"<td>{item_forms(view, item, csrf)}</td></tr>"
    )


def render_followup(view: FollowupView, csrf: str, message: str | None) -> str:
    """The follow-up run: its review, its post-mortem and its action items, with their forms."""
    parts = [f'<p class="msg" id="message">{e(message)}</p>' if message else ""]
    parts.append(
        f'<p id="status">status: <b>{e(view.status.value)}</b>{" — " + e(view.outcome) if view.outcome else ""}</p>'
    )
    parts.append(
        f'<p>follow-up of <a href="{e(run_link(view.incident_workflow_id))}">{e(view.incident_id)}</a> '
        f"({e(view.severity.value)}, {e(view.service)}) · workflow {e(view.workflow_id)} · "
        f"commander {e(view.commander)}</p>"
    )
    if view.reviewed_by and view.reviewed_at:
        review = f"recorded by {e(view.reviewed_by)} at {view.reviewed_at:%Y-%m-%d %H:%M} UTC: {e(view.review_notes)}"
    else:
        late = ' <b class="overdue">OVERDUE</b>' if view.now >= view.review_due else ""
        review = f"pending, due {view.review_due:%Y-%m-%d %H:%M} UTC{late} (runbook review)"
    if view.completed_by:
        postmortem = f"complete, by {e(view.completed_by)}"
    else:
        late = ' <b class="overdue">OVERDUE</b>' if view.now >= view.postmortem_due else ""
        postmortem = f"due {view.postmortem_due:%Y-%m-%d %H:%M} UTC{late} (runbook followup complete)"
    draft = f"<code>{e(view.postmortem_uri)}</code>" if view.postmortem_uri else "not drafted yet"
    parts.append(
        f'<table id="followup"><tr><th>review</th><td id="review">{review}</td></tr>'
        f'<tr><th>post-mortem</th><td id="postmortem">{postmortem}</td></tr>'
        f'<tr><th>draft</th><td id="draft">{draft}</td></tr></table>'
    )
    rows = "".join(item_row(view, item, csrf) for item in view.items)
    parts.append(
        '<h2>Action items</h2><table id="items"><tr><th>item</th><th>text</th><th>owner</th><th>due (UTC)</th>'
        f"<th>state</th><th>evidence / reason</th><th></th></tr>{rows}</table>"
        if rows
        else '<h2>Action items</h2><p id="no-items">no action items yet</p>'
    )
    if view.status.value not in ("complete", "cancelled", "refused"):
        parts.append(
            f'<form method="post" action="/ui/action/add" id="add">{hidden(view.workflow_id, csrf)}'
            '<input name="owner" id="item-owner" required placeholder="owner">'
            '<input name="due" id="item-due" placeholder="due in, e.g. 14d (default: the policy\'s)">'
            '<input name="text" id="item-text" required placeholder="what is to be done">'
            '<button id="add-item">Add action item</button></form>'
        )
    return "".join(parts)


# --------------------------------------------------------------------------- the index


def followups_section(views: list[FollowupView]) -> str:
    """Every running follow-up, and the open action items across them, overdue first."""
    if not views:
        return '<h2>Follow-ups</h2><p id="no-followups">no follow-up is running</p>'
    runs = "".join(
        f'<tr><td><a class="followup" href="{e(run_link(v.workflow_id))}">{e(v.incident_id)}</a></td>'
        f"<td>{e(v.status.value)}</td><td>{e(v.severity.value)}</td><td>{e(v.service)}</td>"
        f"<td>{len(v.open_items)}</td><td>{sum(1 for i in v.open_items if i.overdue(v.now))}</td></tr>"
        for v in sorted(views, key=lambda v: v.incident_id)
    )
    items = sorted(
        ((v, i) for v in views for i in v.open_items), key=lambda pair: (not pair[1].overdue(pair[0].now), pair[1].due)
    )
    item_rows = "".join(
        f'<tr><td><a href="{e(run_link(v.workflow_id))}">{e(v.incident_id)}</a></td><td>{e(i.item_id)}</td>'
        f'<td class="state{" overdue" if i.overdue(v.now) else ""}">{e(state_of(i, v))}</td><td>{e(i.owner)}</td>'
        f"<td>{i.due:%Y-%m-%d %H:%M}</td><td>{e(i.text)}</td></tr>"
        for v, i in items
    )
    open_items = (
        '<table id="open-items"><tr><th>incident</th><th>item</th><th>state</th><th>owner</th><th>due (UTC)</th>'
        f"<th>text</th></tr>{item_rows}</table>"
        if item_rows
        else '<p id="no-open-items">no open action items</p>'
    )
    return (
        '<h2>Follow-ups</h2><table id="followups"><tr><th>incident</th><th>status</th><th>sev</th><th>service</th>'
        f"<th>open items</th><th>overdue</th></tr>{runs}</table><h2>Open action items</h2>{open_items}"
    )
