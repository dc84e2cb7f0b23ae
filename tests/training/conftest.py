"""Fixtures for the training tests."""

import pytest
from tiny import ClipsInMemory


@pytest.fixture
def clips() -> ClipsInMemory:
    return ClipsInMemory()
