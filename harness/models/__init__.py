"""What is trained: the model families behind one interface, and the registry that names them.

Built-in families: `lstm`, `gru`, `rnn` (cuDNN-fused stacks), `residual_rnn` (a residual tanh
RNN with a hand-written backward), `mlp` (the bigram model) and `gpt` (a decoder-only transformer,
the one family that sees windows instead of carrying state). Add one with `register_family`
(docs/model-families.md).
"""

from harness.models._base import (
    CharModel,
    Family,
    State,
    count_params,
    detach_state,
    set_rate,
)
from harness.models._bigram import BigramMLP
from harness.models._gpt import GPT, KVCache, gpt_attention_flops
from harness.models._recurrent import REGULARIZERS, FusedRecurrent, embedding_rows, locked_dropout
from harness.models._registry import (
    build_model,
    carries_state,
    family_names,
    family_options,
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
    "GPT",
    "REGULARIZERS",
    "RESIDUAL_LEAK",
    "BigramMLP",
    "CharModel",
    "Family",
    "FusedRecurrent",
    "KVCache",
    "ResidualRNN",
    "ResidualRNNLayer",
    "ResidualScan",
    "State",
    "build_model",
    "carries_state",
    "count_params",
    "detach_state",
    "embedding_rows",
    "family_names",
    "family_options",
    "flops_per_char",
    "get_family",
    "gpt_attention_flops",
    "is_recurrent",
    "locked_dropout",
    "register_family",
    "residual_scan_reference",
    "set_rate",
]
