"""Autoscaling with direct ingress: Ray's queue-length rule, counting the requests the replicas serve themselves.

Why: Ray's default autoscaling policy counts the requests Ray routes (through its proxy or handles). With
direct ingress the clients talk to the replicas' own HTTP server, so Ray would see an idle deployment
under full load. Each direct-ingress replica therefore reports how many requests its server is handling
(``record_autoscaling_stats``, Ray's custom autoscaling metrics) and this policy applies Ray's own rule
to their sum plus whatever Ray routes: ``replicas × in-flight / (replicas × target_ongoing_requests)``.
Ray's wrapper around custom policies then applies ``min_replicas``/``max_replicas``, the up- and
down-scaling factors and delays of the deployment's ``autoscaling_config``, as for its default policy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IN_FLIGHT_METRIC", "direct_ingress_policy"]

IN_FLIGHT_METRIC = "modelcapsule_direct_in_flight"
"""The custom metric each direct-ingress replica reports: requests its own server is handling."""


def direct_ingress_policy(ctx: Any) -> tuple[float, dict[str, Any]]:
    """Desired replicas for a direct-ingress deployment (a Ray Serve ``policy_function``)."""
    running = int(ctx.current_num_replicas)
    if running == 0:
        return float(ctx.target_num_replicas), {}
    per_replica = (ctx.aggregated_metrics or {}).get(IN_FLIGHT_METRIC, {})
    in_flight = float(sum(per_replica.values())) + float(ctx.total_num_requests or 0)
    target = float(ctx.config.get_target_ongoing_requests()) * running
    return running * in_flight / target, {}
