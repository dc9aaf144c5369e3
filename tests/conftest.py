"""Fixtures shared across test folders."""

from tests.support.terraform import terraform_home  # noqa: F401  (the provider installed as a user would)
