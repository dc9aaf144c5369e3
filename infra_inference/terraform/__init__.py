"""The Terraform provider: the five components as `infra_inference_*` resources, over plugin protocol v6.

A delivery adapter beside `components/` (Pulumi): both plan with `plan/` and render with `render/`.
"""
