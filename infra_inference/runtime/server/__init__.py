"""The model server behind `infra-inference serve`.

Public surface: the settings, the model protocol a user class implements, and
the server itself (for embedding, e.g. by `infra-inference dev`).
"""

from infra_inference.runtime.server.lifecycle import ModelServer, serve
from infra_inference.runtime.server.model import InferRequest, InvalidInput, Model, ModelContext, Tensors
from infra_inference.runtime.server.settings import ServerSettings

__all__ = [
    "InferRequest",
    "InvalidInput",
    "Model",
    "ModelContext",
    "ModelServer",
    "ServerSettings",
    "Tensors",
    "serve",
]
