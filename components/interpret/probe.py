"""Linear toxicity probe on a frozen causal LM (as in XG, after Lee et al. 2024).

Each text becomes the mean over its tokens of the final norm's output (what the LM head reads),
and a bias-free ``Linear(d, 1)`` + sigmoid is trained on those vectors with BCE and Adam. The
probe's weight is a direction in the residual stream, which is what the value-vector stage
compares MLP value vectors with; that is also why features are not standardised (a rescaled
space would give a direction in a different basis).

The model is frozen, so the vectors are computed once and kept; epochs then cost a few matrix
products each.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from xdetox.components.interpret.architectures import Architecture
from xdetox.components.interpret.plots import roc_png
from xdetox.components.interpret.pooling import (
    encode_texts,
    load_frozen,
    mean_pooled_states,
    token_limit,
)
from xdetox.components.interpret.probe_data import LabelledText, read_probe_data
from xdetox.components.interpret.settings import ProbeConfig
from xdetox.components.interpret.stats import RocCurve, roc_auc, roc_curve
from xdetox.components.interpret.tables import write_csv
from xdetox.errors import DataError
from xdetox.files import atomic_dir, write_json

log = logging.getLogger(__name__)

PROBE_FILE = "probe.safetensors"
SUMMARY_FILE = "probe_summary.json"
ROC_FILE = "roc_curve.csv"
ROC_PLOT = "roc_curve.png"
PROBE_KEY = "weight"  # [d]: row 0 of the Linear(d, 1, bias=False) weight
MAX_ROC_POINTS = 201  # in the summary (KFP ClassificationMetrics); the CSV keeps every point


@dataclass
class ProbeTraining:
    """A trained probe and how it got there."""

    weight: torch.Tensor  # [d], from the epoch with the lowest validation loss
    best_epoch: int
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss, val_accuracy
    train_index: np.ndarray
    val_index: np.ndarray


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split; both parts non-empty."""
    n_val = round(n * validation_fraction)
    if n < 2 or not 0 < n_val < n:
        raise ValueError(
            f"{n} examples cannot be split {1 - validation_fraction:.0%}/"
            f"{validation_fraction:.0%} into non-empty training and validation sets"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def evaluate_probe(
    weight: torch.Tensor, features: torch.Tensor, labels: torch.Tensor
) -> tuple[dict[str, Any], RocCurve | None, np.ndarray]:
    """Loss, accuracy (p ≥ 0.5) and ROC-AUC (None with one class only) plus curve and scores."""
    with torch.no_grad():
        logits = features @ weight
        loss = float(F.binary_cross_entropy_with_logits(logits, labels.float()))
        accuracy = float(((logits >= 0).long() == labels).float().mean())
        probs = torch.sigmoid(logits).double().numpy()
    y = labels.numpy()
    both = 0 < y.sum() < len(y)
    metrics = {
        "loss": loss,
        "accuracy": accuracy,
        "roc_auc": roc_auc(y, probs) if both else None,
        "n": len(y),
        "n_toxic": int(y.sum()),
    }
    return metrics, (roc_curve(y, probs) if both else None), probs


def confusion_counts(labels: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """``{"tn", "fp", "fn", "tp"}`` for binary labels and predictions (1 = toxic)."""
    y, p = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    return {
        "tn": int((~y & ~p).sum()),
        "fp": int((~y & p).sum()),
        "fn": int((y & ~p).sum()),
        "tp": int((y & p).sum()),
    }


def train_probe(
    features: torch.Tensor, labels: torch.Tensor, config: ProbeConfig, *, progress: bool = True
) -> ProbeTraining:
    """Adam on BCE-with-logits, ``config.batch_size`` examples a step, best epoch by val. loss."""
    features = features.float().cpu()
    labels = labels.long().cpu()
    train_idx, val_idx = split_indices(len(labels), config.validation_fraction, config.seed)
    x_tr, y_tr = features[train_idx], labels[train_idx].float()
    x_val, y_val = features[val_idx], labels[val_idx]
    d = features.shape[1]
    gen = torch.Generator().manual_seed(config.seed)
    # nn.Linear's default init range, drawn from our own generator (no global RNG side effects).
    weight = ((torch.rand(d, generator=gen) * 2 - 1) / math.sqrt(d)).requires_grad_()
    optimizer = torch.optim.Adam([weight], lr=config.learning_rate)
    best_loss, best_epoch, best_weight = math.inf, 0, weight.detach().clone()
    history: list[dict[str, float]] = []
    bar = tqdm(
        range(1, config.epochs + 1), desc="probe", unit="epoch", disable=None if progress else True
    )
    with torch.enable_grad():
        for epoch in bar:
            perm = torch.randperm(len(y_tr), generator=gen)
            total = 0.0
            for start in range(0, len(perm), config.batch_size):
                batch = perm[start : start + config.batch_size]
                loss = F.binary_cross_entropy_with_logits(x_tr[batch] @ weight, y_tr[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            val, _, _ = evaluate_probe(weight.detach(), x_val, y_val)
            if not math.isfinite(val["loss"]):
                raise ValueError(f"probe validation loss is {val['loss']} at epoch {epoch}")
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / len(y_tr),
                    "val_loss": val["loss"],
                    "val_accuracy": val["accuracy"],
                }
            )
            bar.set_postfix(val_loss=f"{val['loss']:.4f}", val_acc=f"{val['accuracy']:.3f}")
            if val["loss"] < best_loss:
                best_loss, best_epoch, best_weight = val["loss"], epoch, weight.detach().clone()
    return ProbeTraining(best_weight, best_epoch, history, train_idx, val_idx)


def save_probe(path: str | Path, weight: torch.Tensor, metadata: dict[str, str]) -> None:
    save_file({PROBE_KEY: weight.detach().float().cpu().contiguous()}, str(path), metadata)


def load_probe(path: str | Path) -> torch.Tensor:
    """The probe direction ``[d]`` (float32) from a file written by :func:`run_probe`."""
    path = Path(path)
    if path.is_dir():
        path = path / PROBE_FILE
    if not path.is_file():
        raise DataError("probe file not found", path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"not a safetensors file ({exc})", path) from None
    weight = tensors.get(PROBE_KEY)
    if weight is None or weight.ndim != 1 or weight.numel() == 0:
        raise DataError(f"expected a 1-D tensor {PROBE_KEY!r}", path)
    if not torch.isfinite(weight).all() or float(weight.norm()) == 0.0:
        raise DataError("probe weight is zero or not finite", path)
    return weight.float()


def probe_max_length(model: Any, tokenizer: Any, config: ProbeConfig) -> int | None:
    """``probe.max_length``, or with None the model's own limit (:func:`token_limit`)."""
    return config.max_length if config.max_length is not None else token_limit(model, tokenizer)


def _embed(
    model: Any,
    tokenizer: Any,
    arch: Architecture,
    examples: list[LabelledText],
    path: Path,
    config: ProbeConfig,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    encoded = encode_texts(
        tokenizer, [e.text for e in examples], probe_max_length(model, tokenizer, config)
    )
    for e, ids in zip(examples, encoded, strict=True):
        if not ids:
            raise DataError("text encodes to no tokens", path, e.line)
    return mean_pooled_states(
        model,
        arch,
        encoded,
        layers="final",
        batch_size=config.embed_batch_size,
        pad_id=tokenizer.pad_token_id,
        desc=desc,
        progress=progress,
    )


def _subsample(examples: list[LabelledText], limit: int | None, seed: int) -> list[LabelledText]:
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), limit, replace=False))
    return [examples[i] for i in keep]


def run_probe(
    model_dir: str | Path,
    data_path: str | Path,
    output_dir: str | Path,
    config: ProbeConfig | None = None,
    *,
    test_path: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Train the probe and write ``probe.safetensors``, ``probe_summary.json``,
    ``roc_curve.csv`` and ``roc_curve.png`` into ``output_dir`` (replaced whole, atomically).

    ``test_path``: an optional held-out CSV (same formats) evaluated with the chosen probe.
    Returns the summary (validation accuracy, ROC-AUC, best epoch, counts, thinned ROC curve).
    """
    config = config or ProbeConfig()
    data_path = Path(data_path)
    data = read_probe_data(data_path, config.label, config.threshold)
    test = (
        read_probe_data(test_path, config.label, config.threshold)
        if test_path is not None
        else None
    )
    examples = _subsample(data.examples, config.max_examples, config.seed)
    labels = torch.tensor([e.label for e in examples])
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise DataError("the probe needs both toxic and non-toxic examples", data_path)
    try:  # fail before the model runs, not after an hour of encoding
        split_indices(len(examples), config.validation_fraction, config.seed)
    except ValueError as exc:
        raise DataError(str(exc), data_path) from None

    model, tokenizer, arch = load_frozen(model_dir, device)
    features = _embed(model, tokenizer, arch, examples, data_path, config, progress, "probe data")
    try:
        training = train_probe(features, labels, config, progress=progress)
    except ValueError as exc:
        raise DataError(str(exc), data_path) from None
    val_labels = labels[training.val_index]
    val_metrics, curve, val_probs = evaluate_probe(
        training.weight, features[training.val_index], val_labels
    )
    summary: dict[str, Any] = {
        "model_type": arch.model_type,
        "hidden_size": arch.d_model,
        "data": str(data_path),
        "data_format": data.format,
        "label": config.label,
        "max_length_used": probe_max_length(model, tokenizer, config),
        "n_examples": len(examples),
        "n_toxic": int(labels.sum()),
        "n_non_toxic": int(len(labels) - labels.sum()),
        "n_unlabelled_skipped": data.unlabelled,
        "n_train": len(training.train_index),
        "n_validation": len(training.val_index),
        "best_epoch": training.best_epoch,
        "validation_loss": val_metrics["loss"],
        "validation_accuracy": val_metrics["accuracy"],
        "validation_roc_auc": val_metrics["roc_auc"],
        # Predicted toxic when p >= 0.5, as for the accuracy (KFP's ClassificationMetrics).
        "validation_confusion_matrix": confusion_counts(val_labels.numpy(), val_probs >= 0.5),
        "history": training.history,
        "config": config.model_dump(),
    }
    if data.format == "scored":  # the labels are a classifier's scores cut at this value
        summary["threshold"] = config.threshold
    if test is not None:
        test_labels = torch.tensor([e.label for e in test.examples])
        test_features = _embed(
            model, tokenizer, arch, test.examples, Path(test_path), config, progress, "probe test"
        )
        test_metrics, _, _ = evaluate_probe(training.weight, test_features, test_labels)
        summary.update(
            {
                "test": str(test_path),
                "n_test": test_metrics["n"],
                "test_loss": test_metrics["loss"],
                "test_accuracy": test_metrics["accuracy"],
                "test_roc_auc": test_metrics["roc_auc"],
            }
        )
    thin = curve.thinned(MAX_ROC_POINTS) if curve is not None else None
    summary["roc_curve"] = (
        None if thin is None else {"fpr": thin.fpr, "tpr": thin.tpr, "thresholds": thin.thresholds}
    )
    summary["files"] = {"probe": PROBE_FILE, "summary": SUMMARY_FILE}
    with atomic_dir(output_dir) as tmp:
        save_probe(
            tmp / PROBE_FILE,
            training.weight,
            {
                "model_type": arch.model_type,
                "hidden_size": str(arch.d_model),
                "label": config.label,
                "best_epoch": str(training.best_epoch),
            },
        )
        if curve is not None:
            write_csv(
                tmp / ROC_FILE,
                (
                    {"fpr": f, "tpr": t, "threshold": h}
                    for f, t, h in zip(curve.fpr, curve.tpr, curve.thresholds, strict=True)
                ),
                ("fpr", "tpr", "threshold"),
            )
            roc_png(
                tmp / ROC_PLOT,
                curve,
                title=f"Toxicity probe ({arch.model_type}), validation",
                auc=val_metrics["roc_auc"],
            )
            summary["files"].update({"roc_curve": ROC_FILE, "roc_plot": ROC_PLOT})
        write_json(tmp / SUMMARY_FILE, summary)
    log.info(
        "probe: %s",
        json.dumps(
            {
                k: summary[k]
                for k in ("n_examples", "best_epoch", "validation_accuracy", "validation_roc_auc")
            }
        ),
    )
    return summary
