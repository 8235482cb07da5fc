"""Which torch device ``"auto"`` means: the one place that decides it for every model user, and
the one check that a named device exists on this machine."""

from __future__ import annotations

# heavy optional imports stay local: torch (only when a device is actually resolved or checked).
from learnerprobe.errors import ConfigError


def check_device(device: str) -> str:
    """``device`` if this machine has it, else a ConfigError saying which devices it has.

    Without it "cuda:7" on a machine with no (or fewer) GPUs fails deep inside torch, after
    the corpus was loaded, with an AssertionError or a CUDA runtime traceback."""
    kind, _, index = device.partition(":")
    if device in ("auto", "cpu"):
        return device
    import torch

    if kind == "cuda" and (not index or index.isdigit()):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device {device!r}: this machine has no CUDA device that torch "
                              "can use; use device = \"auto\" or \"cpu\"")
        if index and int(index) >= n:
            raise ConfigError(f"device {device!r}: this machine has {n} CUDA device(s) "
                              f"(cuda:0..cuda:{n - 1})")
        return device
    if device == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ConfigError("device 'mps': Apple's MPS is not available on this machine; "
                              "use device = \"auto\" or \"cpu\"")
        return device
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, mps, cuda or cuda:N")


def resolve_device(device: str = "auto", *, mps: bool = True) -> str:
    """``auto`` picks cuda, then mps (unless ``mps=False``), then cpu; anything else is checked
    (:func:`check_device`) and kept.

    Extraction and prediction use MPS when there is one; fine-tuning and the local LLM backend
    pass ``mps=False`` (bf16 autocast and some of their ops are not supported there), so they
    fall back to the CPU on a Mac as they always have.
    """
    if device != "auto":
        return check_device(str(device))  # a torch.device too
    import torch

    if torch.cuda.is_available():
        return "cuda"
    backend = getattr(torch.backends, "mps", None)
    if mps and backend is not None and backend.is_available():
        return "mps"
    return "cpu"
