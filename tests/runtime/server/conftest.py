"""Fixtures shared by the model server's tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.origin import Origin


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    """An HTTP origin on 127.0.0.1 serving the files put under its root."""
    root = tmp_path / "origin"
    root.mkdir()
    server = Origin(root)
    yield server
    server.close()
