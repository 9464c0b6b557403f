"""Bedrock and IAM, as the connectivity runbook asks them: can Bedrock be reached in the region
(and is the platform's model listed and active), and may the client role call InvokeModel on it.

Reaching Bedrock is a reading, never an activity failure: an outage is what the runbook looks
for. The permission simulation is an activity that can fail (the workflow says why it could not
simulate and goes on with the other readings).
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity

from activities._aws import aws_error, client
from contracts.bedrock import PermissionCheck, PermissionRequest, Reachability, ReachabilityRequest


def model_arn(region: str, model_id: str) -> str:
    """A foundation model's ARN (no account: foundation models belong to AWS)."""
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


@activity.defn
def probe_bedrock(request: ReachabilityRequest) -> Reachability:
    """ListFoundationModels in the region, timed; the platform's model looked up in the answer."""
    bedrock = client("bedrock", request.region)
    started = time.monotonic()
    try:
        listed = bedrock.list_foundation_models()
    except ClientError as err:
        error = err.response.get("Error", {})
        return Reachability(
            region=request.region,
            reachable=False,
            model_id=request.model_id,
            error=f"{error.get('Code', 'Unknown')}: {error.get('Message', str(err))}",
        )
    except BotoCoreError as err:  # no connection, a timeout, an unreadable answer
        return Reachability(region=request.region, reachable=False, model_id=request.model_id, error=str(err))
    latency_ms = (time.monotonic() - started) * 1000
    found = next((m for m in listed.get("modelSummaries", []) if m.get("modelId") == request.model_id), None)
    if found is None:
        return Reachability(region=request.region, reachable=True, latency_ms=latency_ms, model_id=request.model_id)
    return Reachability(
        region=request.region,
        reachable=True,
        latency_ms=latency_ms,
        model_id=request.model_id,
        model_arn=found.get("modelArn") or model_arn(request.region, request.model_id),
        model_listed=True,
        model_status=found.get("modelLifecycle", {}).get("status"),
    )


@activity.defn
def simulate_invoke_permission(request: PermissionRequest) -> PermissionCheck:
    """IAM SimulatePrincipalPolicy: the role's policies (and its permissions boundary) for one
    action on one resource; the decision and the statements that decided it."""
    iam = client("iam", request.region)
    try:
        answer = iam.simulate_principal_policy(
            PolicySourceArn=request.role_arn, ActionNames=[request.action], ResourceArns=[request.resource_arn]
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"simulate {request.action} for {request.role_arn}") from err
    results = answer.get("EvaluationResults", [])
    result = next((r for r in results if r.get("EvalActionName", "").lower() == request.action.lower()), None)
    if result is None:
        return PermissionCheck(
            role_arn=request.role_arn,
            action=request.action,
            resource_arn=request.resource_arn,
            decision="implicitDeny",
            missing_context=["the simulation returned no result for the action"],
        )
    statements = [
        f"{s.get('SourcePolicyId', '?')} ({s.get('SourcePolicyType', '?').lower()})"
        + (
            f" lines {s['StartPosition']['Line']}-{s['EndPosition']['Line']}"
            if "StartPosition" in s and "EndPosition" in s
            else ""
        )
        for s in result.get("MatchedStatements", [])
    ]
    return PermissionCheck(
        role_arn=request.role_arn,
        action=request.action,
        resource_arn=request.resource_arn,
        decision=result["EvalDecision"],
        deciding_statements=statements,
        missing_context=list(result.get("MissingContextValues", [])),
    )
