"""The course's questions asked of the user's models: gradient flow through time, and the learned character map."""

from harness.diagnostics._embeddings import (
    Projection,
    char_label,
    default_queries,
    embedding_matrix,
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
    "char_label",
    "checkpoint_profiles",
    "default_queries",
    "embedding_matrix",
    "held_out_sequences",
    "hidden_gradients",
    "neighbours",
    "not_measured",
    "profile",
    "project",
]
