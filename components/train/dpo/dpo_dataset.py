"""The preference pairs as TRL datasets, with prompts cut to ``max_prompt_length`` tokens.

TRL 1.16 dropped ``DPOConfig.max_prompt_length``: it only truncates the whole sequence to
``max_length``, keeping its start. A long prompt would then eat the answer, so prompts are cut
here, keeping their **end** (the words right before the continuation, the ones that matter for
what comes next), as the older TRL and the XG recipe did.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from xdetox.errors import DataError
from xdetox.files import iter_jsonl, require_fields
from xdetox.records import PAIR_FIELDS

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"


def read_pairs(path: Path) -> list[dict]:
    """The ``prompt``/``chosen``/``rejected`` fields of each line (other fields dropped)."""
    records = []
    for line, record in iter_jsonl(path):
        require_fields(record, PAIR_FIELDS, path, line)
        for name in PAIR_FIELDS:
            if not isinstance(record[name], str):
                raise DataError(f"field {name!r} must be a string", path, line)
        records.append({name: record[name] for name in PAIR_FIELDS})
    return records


def load_pair_splits(data_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """Train and eval pairs of a prepared folder; eval is empty when ``eval.jsonl`` is absent."""
    data_dir = Path(data_dir)
    train = read_pairs(data_dir / TRAIN_FILE)
    if not train:
        raise DataError("no training pairs", data_dir / TRAIN_FILE)
    eval_path = data_dir / EVAL_FILE
    evals = read_pairs(eval_path) if eval_path.is_file() else []
    return train, evals


def _n_special_tokens(tokenizer) -> int:
    """How many special tokens (e.g. Llama's BOS) the tokenizer adds to a text on its own."""
    return len(tokenizer("")["input_ids"])


def truncate_prompt_left(tokenizer, prompt: str, max_tokens: int) -> tuple[str, bool]:
    """Keep the last ``max_tokens`` tokens of ``prompt`` (special tokens included in the count).

    Cuts the text at a token boundary offset rather than decoding ids, so the kept text is exactly
    a suffix of the original (decoding can change spaces or unknown characters).
    """
    budget = max(1, max_tokens - _n_special_tokens(tokenizer))
    if tokenizer.is_fast:
        enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= budget:
            return prompt, False
        # Cut where the last dropped token ends: offsets of byte-level BPE tokens leave out
        # their leading space, which belongs to the kept text.
        start = enc["offset_mapping"][-budget - 1][1]
        return prompt[start:], True
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= budget:
        return prompt, False
    return tokenizer.decode(ids[-budget:]), True


def build_dataset(records: list[dict], tokenizer, max_prompt_length: int) -> tuple[Dataset, int]:
    """A TRL preference dataset of ``records``; also returns how many prompts were cut."""
    rows = []
    n_truncated = 0
    for record in records:
        prompt, cut = truncate_prompt_left(tokenizer, record["prompt"], max_prompt_length)
        n_truncated += cut
        rows.append({"prompt": prompt, "chosen": record["chosen"], "rejected": record["rejected"]})
    return Dataset.from_list(rows), n_truncated
