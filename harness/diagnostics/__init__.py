"""The course's questions asked of the user's models: gradient flow through time, and the learned character map."""

from harness.diagnostics._embeddings import (
    Projection,
    default_queries,
    embedding_matrix,
    label,
    neighbours,
    project,
)
from harness.diagnostics._gradflow import (
    FlowProfile,
    checkpoint_profiles,
    held_out_sequences,
    hidden_gradients,
    not_measured,
    profile,
)

__all__ = [
    "FlowProfile",
    "Projection",
    "checkpoint_profiles",
    "default_queries",
    "embedding_matrix",
    "held_out_sequences",
    "hidden_gradients",
    "label",
    "neighbours",
    "not_measured",
    "profile",
    "project",
]
