"""Loopback HTTP servers that speak the Ollama, Anthropic and OpenAI protocols, for tests and benchmarks.

Each server turns a request into a protocol-neutral `Request`, asks a pluggable `responder(request) ->
Reply`, applies the token budget (num_predict / max_tokens) and answers in its protocol's shape, streamed
or not. `testbed.doubles.flawed_models.FlawedModels` is a responder that behaves like the seed's flawed models.
"""

from testbed.servers.anthropic_server import TEST_KEY, AnthropicServer
from testbed.servers.loopback import LoopbackServer, Recorded
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.openai_server import OpenAIServer
from testbed.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, echo, fit_context
from testbed.servers.responder_backend import ResponderBackend

__all__ = [
    "TEST_KEY",
    "AnthropicServer",
    "LoopbackServer",
    "OllamaServer",
    "OpenAIServer",
    "Recorded",
    "Reply",
    "Request",
    "Responder",
    "ResponderBackend",
    "apply_budget",
    "count_tokens",
    "echo",
    "fit_context",
]
