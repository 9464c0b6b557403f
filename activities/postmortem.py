"""The post-mortem draft, written from the incident's own record and stored in S3.

The incident run's view is read through the worker's own Temporal client (a closed run still
answers its query), drafted by `contracts.postmortem` (the same draft `runbook postmortem`
prints) and put in the policy's bucket. Putting the same key again is what a retry does: the
object is the same draft, so nothing is stored twice under different names.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError

from activities._aws import put_object
from contracts import IncidentView
from contracts.post_incident import StoredPostmortem, StorePostmortem
from contracts.postmortem import draft_postmortem
from contracts.schedules import StoredReport, StoreReport


class Postmortems:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="store_postmortem")
    async def store_postmortem(self, request: StorePostmortem) -> StoredPostmortem:
        """Draft from the incident's view and put it at `s3://bucket/key` (Markdown)."""
        handle = self.client.get_workflow_handle(request.incident_workflow_id)
        try:
            view = await handle.query("view", result_type=IncidentView)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            raise ApplicationError(f"the incident {request.incident_workflow_id} cannot be read: {err}") from err
        draft = draft_postmortem(view)
        body = draft.markdown().encode()
        answer = put_object(
            request.region,
            request.bucket,
            request.key,
            body,
            "text/markdown; charset=utf-8",
            "the post-mortem draft",
            metadata={"incident-id": view.id, "workflow-id": view.workflow_id},
        )
        figures = draft.figures
        return StoredPostmortem(
            uri=f"s3://{request.bucket}/{request.key}",
            etag=answer.get("ETag"),
            bytes=len(body),
            time_to_acknowledge=figures.time_to_acknowledge,
            time_to_mitigate=figures.time_to_mitigate,
            time_to_resolve=figures.time_to_resolve,
        )


@activity.defn(name="store_report")
def store_report(request: StoreReport) -> StoredReport:
    """A report (Markdown) at `s3://bucket/key`; a retry puts the same object again."""
    body = request.body.encode()
    answer = put_object(request.region, request.bucket, request.key, body, request.content_type, "the report")
    return StoredReport(uri=f"s3://{request.bucket}/{request.key}", bytes=len(body), version_id=answer.get("VersionId"))
