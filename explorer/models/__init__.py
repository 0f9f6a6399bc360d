"""The paper's model zoo behind one registry; see ``registry.py`` for the names."""

from explorer.models.registry import build_model, model_names, resolve, seeded_weights

__all__ = ["build_model", "model_names", "resolve", "seeded_weights"]
