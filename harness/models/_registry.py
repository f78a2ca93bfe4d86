"""The registry of model families: a name to a `Family`, for the trainer, study files, the CLI and the report.

The built-in families enter on first use; a user's family enters with `register_family` from the
user's own code (docs/model-families.md).
"""

from __future__ import annotations

from harness.common import HarnessError
from harness.models._base import CharModel, Family
from harness.models._bigram import MLP
from harness.models._recurrent import GRU, LSTM, RNN
from harness.models._residual import RESIDUAL_RNN

BUILTIN = (LSTM, GRU, RNN, RESIDUAL_RNN, MLP)
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


def build_model(family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int,
                dropout: float) -> CharModel:
    model = get_family(family).build(vocab_size, embedding_dim, hidden_dim, layers, dropout)
    model.family = family
    return model


def flops_per_char(family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int) -> int:
    """Training FLOPs per predicted character: 6 x the multiply-accumulate weights a step touches.

    The forward pass costs 2 FLOPs per weight of every matrix applied once per character; backward
    costs twice the forward, hence 6. Elementwise work (gates, tanh, softmax) is left out, as in
    the usual MFU convention, so the figure is a lower bound on the real work.
    """
    return 6 * get_family(family).weights(vocab_size, embedding_dim, hidden_dim, layers)
