"""Fixtures shared by the unit tests of several packages (the session set-up is in tests/conftest.py).

The code behind them lives in tests/support/: the moto server, the local-backend world, the tiny
trained models.
"""

from __future__ import annotations

import pytest

from tests.support.local_world import make_world
from tests.support.moto_server import _CLEARED_ENV, aws_env, reset_moto_server, start_moto_server


@pytest.fixture
def moto_server(monkeypatch, tmp_path) -> str:
    """A clean moto server with AWS env vars pointing at it; yields the endpoint URL."""
    endpoint = start_moto_server()
    reset_moto_server(endpoint)
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    # An empty config/credentials file, so nothing from ~/.aws leaks into a test.
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    yield endpoint


@pytest.fixture
def world(tmp_path) -> dict:
    """A source dir tarball, two file:// channels, an output root and a backend (`make_world`)."""
    return make_world(tmp_path)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> dict:
    """Tiny GNN and transformer, trained once per session and registered as versions 1 (champion) and 2."""
    from tests.support.serving_fixtures import train_and_register

    return train_and_register(tmp_path_factory.mktemp("served"))
