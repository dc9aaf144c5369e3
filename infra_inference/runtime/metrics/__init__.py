"""Prometheus exposition shared by the runtime's services: reading it (prom.py)."""
