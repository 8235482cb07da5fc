"""Which torch device ``"auto"`` means: the one place that decides it for every model user."""

from __future__ import annotations

# heavy optional imports stay local: torch (only when a device is actually resolved).


def resolve_device(device: str = "auto", *, mps: bool = True) -> str:
    """``auto`` picks cuda, then mps (unless ``mps=False``), then cpu; anything else is kept.

    Extraction and prediction use MPS when there is one; fine-tuning and the local LLM backend
    pass ``mps=False`` (bf16 autocast and some of their ops are not supported there), so they
    fall back to the CPU on a Mac as they always have.
    """
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    backend = getattr(torch.backends, "mps", None)
    if mps and backend is not None and backend.is_available():
        return "mps"
    return "cpu"
