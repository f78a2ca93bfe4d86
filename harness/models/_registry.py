"""The registry of model families: a name to a `Family`, for the trainer, study files, the CLI and the report.

The built-in families enter on first use; a user's family enters with `register_family` from the
user's own code (docs/model-families.md).
"""

from __future__ import annotations

from harness.common import HarnessError
from harness.models._base import CharModel, Family
from harness.models._bigram import MLP
from harness.models._gpt import GPT_FAMILY
from harness.models._recurrent import GRU, LSTM, RNN
from harness.models._residual import RESIDUAL_RNN

BUILTIN = (LSTM, GRU, RNN, RESIDUAL_RNN, MLP, GPT_FAMILY)
_REGISTRY: dict[str, Family] = {}


def _builtins() -> dict[str, Family]:
    """The registry, with the built-in families in it from the first use on."""
    if "lstm" not in _REGISTRY:
        for family in BUILTIN:
            _REGISTRY.setdefault(family.name, family)
    return _REGISTRY


def register_family(family: Family, replace: bool = False) -> Family:
    """Make a family known by name everywhere (study files, `--model`, the trainer, the report)."""
    registry = _builtins()
    if family.name in registry and not replace and registry[family.name] is not family:
        raise HarnessError(f"a model family named {family.name!r} is already registered; pick another name or "
                           f"pass replace=True")
    if not family.name.isidentifier():
        raise HarnessError(f"model family name {family.name!r} must be a plain identifier (letters, digits, _)")
    registry[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    return tuple(_builtins())


def get_family(name: str) -> Family:
    registry = _builtins()
    if name not in registry:
        raise HarnessError(f"model {name!r} is not a model family; choose one of {', '.join(registry)}")
    return registry[name]


def is_recurrent(name: str) -> bool:
    """Whether a family has a time axis; a family this process has not registered is assumed to have one."""
    family = _builtins().get(name)
    return family.recurrent if family is not None else True


def carries_state(name: str) -> bool:
    """Whether a family carries state across chunks (False: it sees windows, e.g. gpt)."""
    family = _builtins().get(name)
    return family.carries_state if family is not None else True


def family_options(family: str, settings: object) -> dict:
    """The family's own settings (e.g. gpt's heads, seq_len) read from a TrainConfig or any object with them."""
    return {name: getattr(settings, name) for name in get_family(family).options if hasattr(settings, name)}


def build_model(family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int,
                dropout: float, **options) -> CharModel:
    """A fresh model; `options` are the family's own settings (others are ignored, so callers can pass them all)."""
    spec = get_family(family)
    model = spec.build(vocab_size, embedding_dim, hidden_dim, layers, dropout,
                       **{k: v for k, v in options.items() if k in spec.options})
    model.family = family
    return model


def flops_per_char(family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int,
                   seq_len: int | None = None) -> int:
    """Training FLOPs per predicted character: 6 x the multiply-accumulate weights a step touches, plus attention.

    The forward pass costs 2 FLOPs per weight of every matrix applied once per character; backward
    costs twice the forward, hence 6. A family whose work per character grows with its context
    (gpt) adds its attention term for `seq_len` (harness.models._gpt: 12 L E T). Elementwise work
    (gates, tanh, softmax, norms) is left out, as in the usual MFU convention.
    """
    spec = get_family(family)
    flops = 6 * spec.weights(vocab_size, embedding_dim, hidden_dim, layers)
    if spec.attention_flops is not None and seq_len is not None:
        flops += spec.attention_flops(embedding_dim, layers, seq_len)
    return flops
