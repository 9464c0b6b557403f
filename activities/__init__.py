"""Activities: the only code that touches the outside world, one module per system."""

from collections.abc import Callable
from typing import Any

from activities import (
    bedrock,
    cloudwatch,
    diagnosis,
    ecs,
    failover,
    fallback,
    pagerduty,
    platform_api,
    policy,
    postmortem,
    reports,
    scaling,
)

ALL: list[Callable[..., Any]] = [
    policy.load_policy,
    pagerduty.trigger_page,
    pagerduty.acknowledge_page,
    pagerduty.resolve_page,
    pagerduty.find_pagerduty_incident,
    pagerduty.add_pagerduty_note,
    pagerduty.escalate_pagerduty_incident,
    pagerduty.page_and_note,
    pagerduty.sync_pagerduty,
    pagerduty.open_maintenance_window,
    pagerduty.close_maintenance_window,
    fallback.notify_fallback,
    diagnosis.diagnose,
    diagnosis.verify_slo,
    platform_api.check_component_health,
    platform_api.check_system_status,
    # set_hybrid_routing: registered by the worker from activities.runs.Runs, which first asks
    # whether another run owns the emergency switch (platform_api has the plain call)
    platform_api.read_bedrock_breaker,
    cloudwatch.read_metrics,
    cloudwatch.read_series,
    cloudwatch.scan_error_logs,
    ecs.describe_deployment,
    ecs.set_service_task_definition,
    ecs.force_new_deployment,
    scaling.read_ecs_capacity,
    scaling.scale_ecs_service,
    scaling.read_provisioned_concurrency,
    scaling.set_provisioned_concurrency,
    scaling.wait_for_provisioned_concurrency,
    failover.read_failover_records,
    failover.preflight,
    failover.change_failover_records,
    failover.wait_for_ecs_running,
    failover.probe_health,
    bedrock.probe_bedrock,
    bedrock.simulate_invoke_permission,
    postmortem.store_report,
    reports.chart_review,
]
