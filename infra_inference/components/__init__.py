"""Pulumi ComponentResources: thin shells that validate, render and create typed resources."""
