"""A compact Temporal Fusion Transformer (Lim et al., 2021) for per-row direction classification.

The network reads a window of the last ``input_size`` feature rows ending at row t (never a row
after t) and returns the logit of P(label = 1) at row t. It keeps the TFT's building blocks:

* **input embedding**: each continuous feature x_j becomes ``x_j * w_j + b_j`` in R^d; the
  window position (steps before t) is a known time-varying input with a learned embedding;
* **variable selection network** (VSN): a GRN over all flattened embeddings gives softmax
  weights per variable and time step; each variable also passes through its own GRN; the output
  is the weighted sum. The weights are the model's feature importance;
* **LSTM encoder** over the window (local processing), with a gated skip connection
  (GLU + add & norm) back to the VSN output;
* **static enrichment** GRN (static-less variant: no context vector, there are no static
  covariates);
* **interpretable multi-head attention**: per-head queries and keys, one value projection shared
  by all heads, head outputs averaged, then projected; masked so padding (rows before the start
  of the array) is never attended. The TFT's decoder applies causal self-attention at every
  position, but only row t's output is used here, so only row t's query is computed: the same
  numbers, a fraction of the work;
* position-wise GRN and a final gated skip over the whole temporal fusion decoder, then a
  linear layer to one logit (trained with binary cross-entropy).

All gates are GLUs with dropout before them, as in the paper. The per-variable GRNs are one
batched module (weights stacked over variables) instead of a list of small modules: the same
function, far fewer kernel launches.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class GLU(nn.Module):
    """Gated linear unit: ``sigmoid(W4 x + b4) * (W5 x + b5)``, dropout applied to x first."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_in, 2 * d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.linear(self.dropout(x)).chunk(2, dim=-1)
        return torch.sigmoid(gate) * value


class GateAddNorm(nn.Module):
    """``LayerNorm(skip + GLU(x))``: the TFT's gated residual connection."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.glu = GLU(d_in, d_out, dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.norm(skip + self.glu(x))


class GRN(nn.Module):
    """Gated residual network: ``LayerNorm(a + GLU(W1 ELU(W2 a + b2) + b1))``.

    A linear skip projection is used when the input and output sizes differ.
    """

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else None
        self.fc2 = nn.Linear(d_in, d_hidden)
        self.fc1 = nn.Linear(d_hidden, d_hidden)
        self.gate = GateAddNorm(d_hidden, d_out, dropout)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        skip = a if self.skip is None else self.skip(a)
        eta = self.fc1(F.elu(self.fc2(a)))
        return self.gate(eta, skip)


class VariableGRNs(nn.Module):
    """One GRN per variable (d → d), weights stacked: input ``(..., V, d)`` → ``(..., V, d)``."""

    def __init__(self, n_vars: int, d: int, dropout: float) -> None:
        super().__init__()
        self.w2 = nn.Parameter(torch.empty(n_vars, d, d))
        self.b2 = nn.Parameter(torch.zeros(n_vars, d))
        self.w1 = nn.Parameter(torch.empty(n_vars, d, d))
        self.b1 = nn.Parameter(torch.zeros(n_vars, d))
        self.wg = nn.Parameter(torch.empty(n_vars, d, 2 * d))
        self.bg = nn.Parameter(torch.zeros(n_vars, 2 * d))
        self.norm_w = nn.Parameter(torch.ones(n_vars, d))
        self.norm_b = nn.Parameter(torch.zeros(n_vars, d))
        self.dropout = nn.Dropout(dropout)
        bound = 1.0 / math.sqrt(d)  # nn.Linear's default init range
        for w in (self.w2, self.w1, self.wg):
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eta = F.elu(torch.einsum("...vi,vio->...vo", x, self.w2) + self.b2)
        eta = torch.einsum("...vi,vio->...vo", eta, self.w1) + self.b1
        gate, value = (
            torch.einsum("...vi,vio->...vo", self.dropout(eta), self.wg) + self.bg
        ).chunk(2, dim=-1)
        out = x + torch.sigmoid(gate) * value
        out = F.layer_norm(out, out.shape[-1:])
        return out * self.norm_w + self.norm_b


class VariableSelection(nn.Module):
    """TFT variable selection network without static context.

    Returns the combined embedding ``(..., d)`` and the selection weights ``(..., V)``.
    """

    def __init__(self, n_vars: int, d: int, dropout: float) -> None:
        super().__init__()
        self.weights_grn = GRN(n_vars * d, d, n_vars, dropout)
        self.var_grns = VariableGRNs(n_vars, d, dropout)

    def forward(self, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.weights_grn(xi.flatten(-2)), dim=-1)
        processed = self.var_grns(xi)
        return (processed * weights.unsqueeze(-1)).sum(dim=-2), weights


class InterpretableAttention(nn.Module):
    """Interpretable multi-head attention for one query per sequence (the last step).

    Heads have their own query/key projections and share one value projection; the head outputs
    are averaged (so the averaged attention pattern explains the output) and projected back.
    """

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"hidden size {d} is not divisible by {n_heads} attention heads")
        self.n_heads = n_heads
        self.d_head = d // n_heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, self.d_head)
        self.out = nn.Linear(self.d_head, d)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``(B, d)``, keys ``(B, L, d)``, valid ``(B, L)`` bool → ``(B, d)``, ``(B, H, L)``."""
        b, length, _ = keys.shape
        q = self.q(query).view(b, self.n_heads, 1, self.d_head)
        k = self.k(keys).view(b, length, self.n_heads, self.d_head).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)).squeeze(-2) / math.sqrt(self.d_head)  # (B, H, L)
        scores = scores.masked_fill(~valid.unsqueeze(1), float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        v = self.v(keys)  # (B, L, d_head), shared by the heads
        heads = attn @ v  # (B, H, d_head)
        return self.out(heads.mean(dim=1)), attn


class TemporalFusionTransformer(nn.Module):
    """TFT classifier over a window ``(B, L, F)`` of standardised features → logit ``(B,)``."""

    def __init__(
        self, n_features: int, hidden_size: int, attention_heads: int, dropout: float,
        input_size: int,
    ) -> None:
        super().__init__()
        d = hidden_size
        self.n_features = n_features
        self.input_size = input_size
        self.feat_w = nn.Parameter(torch.empty(n_features, d))
        self.feat_b = nn.Parameter(torch.zeros(n_features, d))
        nn.init.normal_(self.feat_w, std=1.0)
        self.position = nn.Embedding(input_size, d)
        self.vsn = VariableSelection(n_features + 1, d, dropout)
        self.lstm = nn.LSTM(d, d, batch_first=True)
        self.lstm_gate = GateAddNorm(d, d, dropout)
        self.enrichment = GRN(d, d, d, dropout)
        self.attention = InterpretableAttention(d, attention_heads, dropout)
        self.attn_gate = GateAddNorm(d, d, dropout)
        self.positionwise = GRN(d, d, d, dropout)
        self.final_gate = GateAddNorm(d, d, dropout)
        self.head = nn.Linear(d, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, F)`` → per-variable embeddings ``(B, L, F + 1, d)`` (last: window position)."""
        length = x.shape[1]
        feats = x.unsqueeze(-1) * self.feat_w + self.feat_b
        # position index counts steps before row t: the last row of the window is 0
        steps = torch.arange(length - 1, -1, -1, device=x.device)
        pos = self.position(steps).expand(x.shape[0], length, -1).unsqueeze(2)
        return torch.cat([feats, pos], dim=2)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B,)`` and the variable selection weights ``(B, L, F + 1)``."""
        selected, weights = self.vsn(self.embed(x))
        encoded, _ = self.lstm(selected)
        temporal = self.lstm_gate(encoded, selected)
        enriched = self.enrichment(temporal)
        last = enriched[:, -1]
        attended, _ = self.attention(last, enriched, valid)
        fused = self.attn_gate(attended, last)
        out = self.final_gate(self.positionwise(fused), temporal[:, -1])
        return self.head(out).squeeze(-1), weights


__all__ = [
    "GLU",
    "GRN",
    "GateAddNorm",
    "InterpretableAttention",
    "TemporalFusionTransformer",
    "VariableGRNs",
    "VariableSelection",
]
