"""Pooling of per-token hidden states into one vector per sequence, correct for either padding side.

Every function takes the attention mask instead of assuming where padding sits, so the same code
serves right-padded encoders and left-padded decoders, and a batched call gives the vectors a
one-at-a-time call gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays a lazy import so the CLI starts fast
    import torch

POOLINGS = ("last", "mean", "cls")


def first_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first position with mask == 1 in each row (CLS under left padding too)."""
    return mask.int().argmax(dim=1)  # argmax returns the first maximal index


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask == 1 in each row (left or right padding)."""
    t = mask.shape[1]
    return (t - 1) - mask.int().flip(dims=[1]).argmax(dim=1)


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift positions."""
    return (mask.long().cumsum(dim=1) - 1).clamp_(min=0)


def pool(hidden: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Pool ``hidden`` (batch x tokens x hidden) to float32 (batch x hidden) over real tokens.

    ``last``: the last real token (decoders); ``mean``: the mean over real tokens; ``cls``: the
    first real token. Arithmetic is in float32 whatever dtype the model ran in.
    """
    import torch

    if method == "mean":
        w = mask.to(torch.float32).unsqueeze(1)  # B x 1 x T
        summed = torch.bmm(w, hidden.to(torch.float32)).squeeze(1)
        return summed / w.sum(dim=2).clamp(min=1.0)
    if method == "last":
        idx = last_real_index(mask)
    elif method == "cls":
        idx = first_real_index(mask)
    else:
        raise ValueError(f"unknown pooling {method!r}; known: {', '.join(POOLINGS)}")
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, idx].to(torch.float32)
