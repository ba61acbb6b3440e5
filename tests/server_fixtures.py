"""pytest fixtures for the loopback servers. A test module opts in with
`pytest_plugins = ["tests.server_fixtures"]` (or a conftest imports them).

Each fixture yields a started server with the default echo responder; set `server.responder = ...` in
the test to plug another (e.g. `FlawedModels(seed=1)`). Servers stop at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from testbed.servers.anthropic_server import TEST_KEY, AnthropicServer
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.openai_server import OpenAIServer

__all__ = ["TEST_KEY", "anthropic_server", "closed_port_url", "ollama_server", "openai_server"]


@pytest.fixture
def ollama_server() -> Iterator[OllamaServer]:
    with OllamaServer() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer(api_key=TEST_KEY) as server:
        yield server


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
