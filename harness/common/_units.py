"""Bits per character and perplexity from a mean loss in nats: one definition for every figure.

A diverged run's loss can be large enough that exp() overflows; its perplexity is then infinite
(and written as null in JSON), never a capped number that looks measured.
"""

from __future__ import annotations

import math

LN2 = math.log(2)


def bits_per_char(loss_nats: float) -> float:
    return loss_nats / LN2


def perplexity(loss_nats: float) -> float:
    try:
        return math.exp(loss_nats)
    except OverflowError:
        return math.inf
