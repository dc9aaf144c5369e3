"""The contract between what render/ writes and what the runtime reads.

`gateway.json` (gateway.py) and `policy.json` (policy.py) are models here,
imported by both halves, so a field renamed on one side fails on the other.
"""
