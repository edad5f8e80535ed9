"""Toxic value vectors: MLP value vectors aligned with the probe that the model actually uses.

1. Rank every value vector of every layer by cosine similarity with the probe direction; keep
   the ``top_k`` as candidates (XG: 100).
2. Generate ``steps`` tokens greedily from English prompts and average each candidate neuron's
   activation at the last position over those steps; keep the candidates whose mean is
   positive (XG: 36 of 100 for mGPT). A neuron that is mostly negative *subtracts* its
   toxic-looking vector, so it does not push the model toward toxicity. XG measured this with
   the same loop as its before/after comparison (``xg/collect_neuron_activations.py``: BOS
   prepended by TransformerLens, 20 argmax steps, no stop at end-of-sequence, batches of 10);
   ``prepend_bos`` and ``stop_at_eos`` choose that or the generation pipeline's tokens (see
   :mod:`.greedy`).
3. Project each candidate onto the vocabulary (``lm_head.weight @ v``) to show what it promotes.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.interpret.architectures import Architecture
from xdetox.components.interpret.bos import bos_token_id
from xdetox.components.interpret.greedy import greedy_step_activations
from xdetox.components.interpret.neurons import Neuron
from xdetox.components.interpret.pooling import load_frozen
from xdetox.components.interpret.probe import load_probe
from xdetox.components.interpret.settings import ValueVectorConfig
from xdetox.components.interpret.tables import write_csv
from xdetox.errors import ConfigError, DataError, XdetoxError
from xdetox.files import atomic_dir, write_json

log = logging.getLogger(__name__)

TABLE_FILE = "value_vectors.csv"
SUMMARY_FILE = "value_vectors_summary.json"
COLUMNS = ("rank", "layer", "index", "cosine", "mean_activation", "kept", "top_tokens")


@dataclass(frozen=True)
class Candidate:
    rank: int  # 1 = most similar to the probe
    layer: int
    index: int
    cosine: float

    @property
    def neuron(self) -> Neuron:
        return Neuron(self.layer, self.index)


def rank_value_vectors(arch: Architecture, probe: torch.Tensor, top_k: int) -> list[Candidate]:
    """The ``top_k`` value vectors with the highest cosine with ``probe``, over all layers.

    Ties are broken by (layer, index) so the ranking is reproducible. Zero vectors (no
    direction) are never candidates.
    """
    direction = probe.float().cpu()
    direction = direction / direction.norm()
    cosines = []
    for layer in range(arch.n_layers):
        vectors = arch.value_vectors(layer).cpu()
        norms = vectors.norm(dim=1)
        cos = (vectors @ direction) / norms.clamp_min(torch.finfo(torch.float32).tiny)
        cosines.append(torch.where(norms > 0, cos, torch.full_like(cos, -torch.inf)))
    flat = torch.cat(cosines)
    # Stable sort on -cos keeps (layer, index) order among equal cosines.
    order = torch.sort(-flat, stable=True).indices[: min(top_k, len(flat))]
    out = []
    for rank, pos in enumerate(order.tolist(), start=1):
        if flat[pos] == -torch.inf:
            break
        out.append(Candidate(rank, pos // arch.d_mlp, pos % arch.d_mlp, float(flat[pos])))
    return out


def vocab_projection(
    model: Any, tokenizer: Any, vectors: torch.Tensor, top_tokens: int
) -> list[list[str]]:
    """For each row of ``vectors`` (``[n, d]``), the decoded tokens with the highest
    ``lm_head.weight @ v``, best first."""
    head = model.get_output_embeddings()
    if head is None or getattr(head, "weight", None) is None:
        raise ConfigError(f"model type {model.config.model_type!r}: no output embeddings (lm_head)")
    weight = head.weight.detach()
    with torch.no_grad():
        scores = weight @ vectors.to(weight.device, weight.dtype).T  # [vocab, n]
        k = min(top_tokens, scores.shape[0])
        ids = scores.float().topk(k, dim=0).indices.T.tolist()  # [n, k]
    return [[tokenizer.decode([i]) for i in row] for row in ids]


def run_value_vectors(
    model_dir: str | Path,
    probe_path: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: ValueVectorConfig | None = None,
    *,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Write ``value_vectors.csv`` (rank, layer, index, cosine, mean_activation, kept,
    top_tokens as a JSON list) and a summary into ``output_dir``; return the summary.

    ``kept`` rows are the toxic neurons the intervention and activation stages read.
    """
    config = config or ValueVectorConfig()
    prompts_path = Path(prompts_path)
    probe = load_probe(probe_path)
    prompts = read_prompts(prompts_path, config.language)
    if config.max_prompts is not None:
        prompts = prompts[: config.max_prompts]
    model, tokenizer, arch = load_frozen(model_dir, device)
    if probe.numel() != arch.d_model:
        raise DataError(
            f"probe has {probe.numel()} dimensions but this {arch.model_type} model's hidden "
            f"size is {arch.d_model}; was the probe trained on another model?",
            probe_path,
        )
    candidates = rank_value_vectors(arch, probe, config.top_k)
    if not candidates:
        raise XdetoxError(f"{model_dir}: every MLP value vector of this model is zero")
    neurons = [c.neuron for c in candidates]
    acts = greedy_step_activations(
        model,
        tokenizer,
        arch,
        prompts,
        neurons,
        steps=config.steps,
        batch_size=config.batch_size,
        source=prompts_path,
        prepend_bos=config.prepend_bos,
        stop_at_eos=config.stop_at_eos,
        settings_key="interpret.value_vectors",
        desc="value-vector activations",
        progress=progress,
    )
    means = acts.mean_per_neuron().tolist()
    # Which id led the prompts (None: the tokenizer's own special tokens only).
    bos = (
        bos_token_id(tokenizer, "interpret.value_vectors.prepend_bos")
        if config.prepend_bos
        else None
    )
    by_layer = {layer: arch.value_vectors(layer) for layer in {c.layer for c in candidates}}
    vectors = torch.stack([by_layer[c.layer][c.index] for c in candidates])
    tokens = vocab_projection(model, tokenizer, vectors, config.top_tokens)
    rows = []
    for c, mean, toks in zip(candidates, means, tokens, strict=True):
        has_mean = not math.isnan(mean)  # NaN when no position was recorded
        rows.append(
            {
                "rank": c.rank,
                "layer": c.layer,
                "index": c.index,
                "cosine": c.cosine,
                "mean_activation": mean if has_mean else None,
                "kept": bool(has_mean and mean > 0),
                "top_tokens": json.dumps(toks, ensure_ascii=False),
            }
        )
    kept = [r for r in rows if r["kept"]]
    summary: dict[str, Any] = {
        "model_type": arch.model_type,
        "n_layers": arch.n_layers,
        "neurons_per_layer": arch.d_mlp,
        "value_vector_layout": arch.preset.layout,
        "activation": arch.preset.activation,
        "n_candidates": len(rows),
        "n_kept": len(kept),
        "language": config.language,
        "n_prompts": len(prompts),
        "n_positions": acts.n_positions,
        "bos_token_id": bos,
        "top": [
            {k: r[k] for k in ("layer", "index", "cosine", "mean_activation")} for r in rows[:10]
        ],
        "config": config.model_dump(),
        "files": {"table": TABLE_FILE, "summary": SUMMARY_FILE},
    }
    with atomic_dir(output_dir) as tmp:
        write_csv(tmp / TABLE_FILE, rows, COLUMNS)
        write_json(tmp / SUMMARY_FILE, summary)
    log.info("value vectors: %d candidates, %d kept", len(rows), len(kept))
    return summary
