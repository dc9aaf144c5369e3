"""Pure: validated specs -> Kubernetes objects as plain dicts. No Pulumi, no client, no I/O but its own package data."""

from infra_inference.render.stack import render_stack

__all__ = ["render_stack"]
