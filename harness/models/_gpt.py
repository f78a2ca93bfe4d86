"""gpt: a decoder-only transformer, the family that answers "LSTM or transformer, per device-second?".

Token and learned position embeddings, `layers` pre-LayerNorm blocks (causal self-attention through
`scaled_dot_product_attention`, which picks flash or memory-efficient kernels on a GPU, then a GELU
MLP `hidden_dim` wide), a final LayerNorm and an output layer tied to the token embedding (a
switch: `tie_embeddings`). Width is `embedding_dim`, split over `heads`; the context is `seq_len`.

The family carries no state between chunks: it trains on windows of `seq_len` characters and is
evaluated on sliding windows (harness.training._evaluation). The only state it has is the key/value
cache used for generation, `KVCache`: the prompt is read once and every new character costs one
position of attention instead of a pass over the whole window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness.models._base import CharModel, Family, State


class KVCache:
    """Keys and values of every block for the positions read so far; `length` of `capacity` are filled."""

    def __init__(self, blocks: int, batch: int, heads: int, capacity: int, head_dim: int, like: torch.Tensor):
        shape = (batch, heads, capacity, head_dim)
        self.keys = [like.new_zeros(shape) for _ in range(blocks)]
        self.values = [like.new_zeros(shape) for _ in range(blocks)]
        self.capacity, self.length = capacity, 0


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, block: int = 0) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = (t.view(batch, steps, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(width, dim=2))
        dropout = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            start, end = cache.length, cache.length + steps
            cache.keys[block][:, :, start:end] = k.to(cache.keys[block].dtype)
            cache.values[block][:, :, start:end] = v.to(cache.values[block].dtype)
            k, v = cache.keys[block][:, :, :end].to(q.dtype), cache.values[block][:, :, :end].to(q.dtype)
            # new position i (absolute start + i) sees every cached position up to itself
            mask = torch.arange(end, device=x.device) <= torch.arange(start, end, device=x.device).unsqueeze(1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(batch, steps, width))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): the pre-norm residual block."""

    def __init__(self, width: int, mlp_width: int, heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_width, bias=False), nn.GELU(),
                                 nn.Linear(mlp_width, width, bias=False))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, index: int) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), cache, index))
        return x + self.drop(self.mlp(self.norm2(x)))


class GPT(CharModel):
    """forward(tokens, None) reads a window from position 0; forward(tokens, cache) continues the cache."""

    family = "gpt"

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int, dropout: float, *,
                 heads: int = 4, seq_len: int = 256, tie_embeddings: bool = True):
        super().__init__()
        if embedding_dim % heads:
            raise ValueError(f"embedding_dim {embedding_dim} is not divisible by heads {heads}")
        self.context, self.heads = seq_len, heads
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.position = nn.Embedding(seq_len, embedding_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(embedding_dim, hidden_dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(embedding_dim)
        self.head = nn.Linear(embedding_dim, vocab_size, bias=False)
        self.apply(self._init)
        for block in self.blocks:  # GPT-2's scaling: each residual branch's output starts 1/sqrt(2 layers) small
            for out in (block.attention.proj, block.mlp[2]):
                nn.init.normal_(out.weight, std=0.02 / math.sqrt(2 * layers))
        if tie_embeddings:
            self.head.weight = self.embedding.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def initial_state(self, batch: int) -> KVCache:
        width = self.embedding.embedding_dim
        return KVCache(len(self.blocks), batch, self.heads, self.context, width // self.heads, self.embedding.weight)

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        start = state.length if state is not None else 0
        steps = tokens.shape[1]
        if start + steps > self.context:
            raise ValueError(f"gpt reads at most {self.context} positions (its seq_len); got {start + steps}")
        positions = torch.arange(start, start + steps, device=tokens.device)
        x = self.drop(self.embedding(tokens) + self.position(positions))
        for index, block in enumerate(self.blocks):
            x = block(x, state, index)
        if state is not None:
            state.length += steps
        return self.head(self.norm(x)), state

    def parts(self) -> dict[str, nn.Module | None]:
        """The core is the last block's MLP: its output is what autocast computes in (the residual stream
        itself stays in fp32, as embedding + branch promotes), so the precision probe reads it there."""
        return {"embedding": self.embedding, "core": self.blocks[-1].mlp if len(self.blocks) else None,
                "head": self.head}

    def no_decay(self) -> set[str]:
        """Parameters AdamW leaves undecayed: norms, biases and embeddings (the tied head is the embedding)."""
        return {name for name, p in self.named_parameters() if p.dim() < 2 or "embedding" in name
                or name.startswith("position")}


def gpt_weights(vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int) -> int:
    """Per block: q, k, v and the output projection (4 E^2), the MLP (2 E H); then the head (E V)."""
    return layers * (4 * embedding_dim**2 + 2 * embedding_dim * hidden_dim) + embedding_dim * vocab_size


def gpt_attention_flops(embedding_dim: int, layers: int, seq_len: int) -> int:
    """Training FLOPs per character spent in attention scores and their weighted sum: 12 L E T.

    Forward, a position's query meets T keys (2 T E FLOPs) and weighs T values (2 T E); backward
    doubles that: 12 T E a block. This is the PaLM/nanoGPT convention (6N + 12 L E T), which counts
    the whole T x T matrix; a causal kernel skips about half, so the term is an upper bound.
    """
    return 12 * layers * embedding_dim * seq_len


GPT_FAMILY = Family(
    name="gpt", build=GPT, weights=gpt_weights, recurrent=False, carries_state=False,
    options=("heads", "seq_len", "tie_embeddings"), attention_flops=gpt_attention_flops,
    description="decoder-only transformer: pre-norm causal self-attention + GELU MLP, tied output layer",
)
