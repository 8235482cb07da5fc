"""Third-party chatter off while a user-facing command runs (``predict``, ``serve``).

Why: a user who asks for a label should see the label. Loading a model through transformers
prints a "Loading weights" progress bar and advisory log lines, torch and tokenizers warn about
things the user cannot act on; ``--verbose`` shows all of it. Our own warnings (a bundle
trained with other library versions, small classes) are attributed to learnerprobe modules
and stay visible.

Everything is restored on exit, so an in-process caller (tests, a notebook) keeps its settings.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Read by transformers / huggingface_hub / tokenizers when they are imported or fork.
ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
#: Loggers of the libraries a prediction runs through (warnings and info lines).
LOGGERS = ("transformers", "torch", "huggingface_hub", "onnxruntime", "onnxscript", "urllib3")


def _transformers_quiet() -> tuple[bool, int] | None:
    """Silence an already imported transformers; its previous (bars on, verbosity)."""
    if "transformers" not in sys.modules:
        return None
    try:
        from transformers.utils import logging as tl
    except ImportError:
        return None
    before = (tl.is_progress_bar_enabled(), tl.get_verbosity())
    tl.disable_progress_bar()
    tl.set_verbosity_error()
    return before


def _transformers_restore(before: tuple[bool, int] | None) -> None:
    if before is None:
        return
    from transformers.utils import logging as tl

    if before[0]:
        tl.enable_progress_bar()
    tl.set_verbosity(before[1])


def _imported_defaults(env_before: dict[str, str | None]) -> tuple[bool, int] | None:
    """What transformers would have had, imported outside: bars on unless the caller's
    environment turned them off, its default verbosity (warning) unless the caller set one."""
    if "transformers" not in sys.modules:
        return None
    level = (env_before.get("TRANSFORMERS_VERBOSITY") or "warning").upper()
    bars = env_before.get("HF_HUB_DISABLE_PROGRESS_BARS") is None
    return bars, int(getattr(logging, level, logging.WARNING))


@contextmanager
def quiet_third_party(enabled: bool = True) -> Iterator[None]:
    """While inside: no third-party progress bars, log lines below ERROR or warnings raised in
    third-party code (``enabled=False``: a no-op, for ``--verbose``)."""
    if not enabled:
        yield
        return
    env_before = {k: os.environ.get(k) for k in ENV}
    for k, v in ENV.items():
        os.environ.setdefault(k, v)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    tf_before = _transformers_quiet()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")  # then let ours through (matched last-in, first)
        warnings.filterwarnings("default", module=r"learnerprobe(\.|$)")
        try:
            yield
        finally:
            if tf_before is None:  # imported inside: it read our ENV, so give it the caller's
                tf_before = _imported_defaults(env_before)
            _transformers_restore(tf_before)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            for k, v in env_before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
