"""What a run started by a Schedule needs to know of it: the time it was meant for."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey

# set by Temporal on every run a Schedule starts: the nominal time (a backfilled run's is in the past)
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def nominal_time() -> datetime:
    """The time the run is for: its Schedule's nominal time, so a backfill reviews the nights it
    missed, not last night again; a run started by hand is for now."""
    scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
    return scheduled if scheduled is not None else workflow.now()
