"""Loopback HTTP servers that speak the Ollama, Anthropic and OpenAI protocols, for tests and benchmarks.

Each server turns a request into a protocol-neutral `Request`, asks a pluggable `responder(request) ->
Reply`, applies the token budget (num_predict / max_tokens) and answers in its protocol's shape, streamed
or not. `flawed_models.FlawedModels` is a responder that behaves like the seed's flawed models.
"""

from tests.servers.anthropic_server import TEST_KEY, AnthropicServer
from tests.servers.flawed_models import MODELS, FlawedModels, Traits
from tests.servers.loopback import LoopbackServer, Recorded
from tests.servers.ollama_server import OllamaServer
from tests.servers.openai_server import OpenAIServer
from tests.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, echo, fit_context
from tests.servers.responder_backend import ResponderBackend

__all__ = [
    "MODELS",
    "TEST_KEY",
    "AnthropicServer",
    "FlawedModels",
    "LoopbackServer",
    "OllamaServer",
    "OpenAIServer",
    "Recorded",
    "Reply",
    "Request",
    "Responder",
    "ResponderBackend",
    "Traits",
    "apply_budget",
    "count_tokens",
    "echo",
    "fit_context",
]
