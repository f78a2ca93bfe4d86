"""What is trained: the model families behind one interface, and the registry that names them.

Built-in families: `lstm`, `gru`, `rnn` (cuDNN-fused stacks), `residual_rnn` (a residual tanh
RNN with a hand-written backward) and `mlp` (the bigram model). Add one with `register_family`
(docs/model-families.md).
"""

from harness.models._base import CharModel, Family, State, count_params, detach_state, recurrent_weights
from harness.models._bigram import BigramMLP
from harness.models._recurrent import FusedRecurrent
from harness.models._registry import (
    BUILTIN,
    build_model,
    family_names,
    flops_per_char,
    get_family,
    is_recurrent,
    register_family,
)
from harness.models._residual import (
    RESIDUAL_LEAK,
    ResidualRNN,
    ResidualRNNLayer,
    ResidualScan,
    residual_scan_reference,
)

__all__ = [
    "BUILTIN",
    "RESIDUAL_LEAK",
    "BigramMLP",
    "CharModel",
    "Family",
    "FusedRecurrent",
    "ResidualRNN",
    "ResidualRNNLayer",
    "ResidualScan",
    "State",
    "build_model",
    "count_params",
    "detach_state",
    "family_names",
    "flops_per_char",
    "get_family",
    "is_recurrent",
    "recurrent_weights",
    "register_family",
    "residual_scan_reference",
]
