"""Autoscaling decisions, pure: stable and panic windows, stabilization, rates, steps, scale to zero."""

from infra_inference.decide.autoscaling.decider import (
    STALE_AFTER_S,
    Decision,
    Observation,
    ScalerState,
    decide,
)
from infra_inference.decide.autoscaling.demand import TOTAL_METRICS, littles_law, replicas_wanted
from infra_inference.decide.autoscaling.window import Window

__all__ = ["STALE_AFTER_S", "TOTAL_METRICS", "Decision", "Observation", "ScalerState", "Window", "decide",
           "littles_law", "replicas_wanted"]
