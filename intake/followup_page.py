"""The approval page's follow-ups: an incident's follow-up run (review, post-mortem, action items
with forms to add one, mark one done, ask or confirm a drop) and, on the index, every running
follow-up and its open action items, overdue first.

The page only reads the run's `view` and sends the follow-up's own Updates (`add_action_item`,
`close_action_item`) through `intake.operations`, the same signed path as `runbook action`: who
may do what (the owner or an approver marks done; a second person, an approver, confirms a drop)
is the runbook's to decide, and its refusal is shown as it says it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup
from pydantic import ValidationError

from contracts.post_incident import ActionItem, FollowupView, ItemStatus
from intake.rendering import fragment
from starter import FOLLOWUP_TYPE


def as_followup(workflow_type: str, view: Mapping[str, Any]) -> FollowupView | None:
    if workflow_type != FOLLOWUP_TYPE:
        return None
    try:
        return FollowupView.model_validate(view)
    except ValidationError:
        return None  # a follow-up's view of another shape: shown by the fields every view has


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


def item_row(view: FollowupView, item: ActionItem) -> dict[str, Any]:
    state = state_of(item, view)
    closed = f" by {item.closed_by} {item.closed_at:%Y-%m-%d %H:%M}" if item.closed_by and item.closed_at else ""
    note = item.evidence or item.drop_reason or ""
    if item.status == ItemStatus.OPEN and item.drop_requested_by:
        note = f"drop asked by {item.drop_requested_by}: {item.drop_reason}"
    return {"item": item, "state": state, "closed": closed, "note": note}


def render_followup(view: FollowupView, csrf: str, message: str | None) -> Markup:
    """The follow-up run: its review, its post-mortem and its action items, with their forms."""
    rows = [item_row(view, item) for item in view.items]
    return fragment("followup.html", view=view, csrf=csrf, message=message, rows=rows)


# --------------------------------------------------------------------------- the index


def followups_section(views: list[FollowupView]) -> Markup:
    """Every running follow-up, and the open action items across them, overdue first."""
    runs = [
        (v, len(v.open_items), sum(1 for i in v.open_items if i.overdue(v.now)))
        for v in sorted(views, key=lambda v: v.incident_id)
    ]
    items = sorted(
        ((v, i) for v in views for i in v.open_items), key=lambda pair: (not pair[1].overdue(pair[0].now), pair[1].due)
    )
    return fragment("followups.html", runs=runs, items=[(v, i, state_of(i, v)) for v, i in items])
