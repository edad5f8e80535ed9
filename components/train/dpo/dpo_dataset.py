"""The preference pairs as TRL datasets, tokenized the way ``training.tokenization`` says.

``xdetox`` (the default): TRL 1.16 dropped ``DPOConfig.max_prompt_length``: it only truncates the
whole sequence to ``max_length``, keeping its start. A long prompt would then eat the answer, so
every prompt longer than ``max_prompt_length`` tokens is cut here, keeping its **end** (the words
right before the continuation, the ones that matter for what comes next), and TRL tokenizes the
texts itself (with the tokenizer's own special tokens, EOS after each answer).

``trl-0.8.6``: the token sequences TRL 0.8.6's ``DPOTrainer.tokenize_row`` built, the version the
XG reference pinned (Li, Yong & Bach 2024, arXiv:2406.16235; BatsResearch/cross-lingual-detox,
``xg/training/dpo.py``, which left ``truncation_mode`` at its default ``keep_end``). Read from
``trl/trainer/dpo_trainer.py`` at tag v0.8.6 (commit e90e8d91d2265e484f229c45a5eb8982f94a2936),
decoder-only branch; what it did, in order:

1. The prompt is tokenized alone and ``prompt + answer`` together, without special tokens. The
   answer's ids are those of the joint text after the prompt's; when the prompt's ids are not a
   prefix of the joint ones (its last token merged with the answer's first), the prompt keeps one
   token fewer and the merged token starts the answer (``build_tokenized_answer``).
2. The tokenizer's BOS goes before the prompt (always, even if the tokenizer has its own), EOS
   after each answer.
3. Only when ``prompt + longer answer`` (BOS and EOS counted) exceeds ``max_length`` is the
   prompt cut, to its last ``max_prompt_length`` tokens: a cut prompt loses its BOS, which was
   added before the cut.
4. If that is still too long, each answer is cut to its first ``max_length - max_prompt_length``
   tokens (so its EOS goes too).

These ids are handed to TRL 1.16 as they are (``prompt_ids``/``chosen_ids``/``rejected_ids``, the
columns its own tokenization produces; ``train_dpo`` keeps TRL from tokenizing them again). One
difference remains, rare: TRL 0.8.6 kept a prompt per answer, so when only one answer merged with
the prompt's last token the two prompts differed by that token; TRL 1.16 has one prompt per pair,
so the tokens after the common prefix are put at the start of each answer (as TRL 1.16's own
tokenization does) and scored with it; such pairs are counted (``n_prompt_split_differs``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, DataError
from xdetox.files import iter_jsonl, require_fields
from xdetox.records import PAIR_FIELDS

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"

# The columns of a tokenized preference dataset, as TRL 1.16's DPOTrainer makes and reads them.
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")

log = logging.getLogger(__name__)


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


def is_tokenized(dataset: Dataset) -> bool:
    """Whether ``dataset`` holds token ids already (made here) rather than texts."""
    columns = set(dataset.column_names)
    return set(TOKENIZED_COLUMNS) <= columns and "prompt" not in columns


@dataclass(frozen=True)
class TokenizedPair:
    """One pair as TRL 0.8.6 tokenized it, in TRL 1.16's columns."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    prompt_cut: bool  # the prompt lost tokens (its start, BOS included)
    answers_cut: bool  # the answers were cut to max_length - max_prompt_length
    prompt_split_differs: bool  # chosen and rejected took different prompt ids (see above)


def _split_joint(
    prompt_ids: list[int], joint_ids: list[int], where: str
) -> tuple[list[int], list[int]]:
    """``(prompt part, answer part)`` of the ids of ``prompt + answer`` tokenized together."""
    if len(joint_ids) < len(prompt_ids):
        # TRL 0.8.6 raised here too ("Prompt input ids and answer input ids should have the same
        # length"): the joint text has fewer tokens than the prompt alone.
        raise DataError(f"{where}: prompt + answer has fewer tokens than the prompt alone")
    start = len(prompt_ids)
    if joint_ids[:start] != prompt_ids:
        start -= 1  # the prompt's last token merged with the answer's first: it goes with it
    return joint_ids[:start], joint_ids[start:]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair_trl_0_8_6(
    prompt_ids: list[int],
    prompt_chosen_ids: list[int],
    prompt_rejected_ids: list[int],
    *,
    bos_token_id: int,
    eos_token_id: int,
    max_length: int,
    max_prompt_length: int,
    where: str = "pair",
) -> TokenizedPair:
    """One pair as TRL 0.8.6's ``DPOTrainer.tokenize_row`` built it (module docstring, steps
    1-4), from the ids of ``prompt``, ``prompt + chosen`` and ``prompt + rejected`` (each
    tokenized without special tokens)."""
    chosen_prompt, chosen = _split_joint(prompt_ids, prompt_chosen_ids, where)
    rejected_prompt, rejected = _split_joint(prompt_ids, prompt_rejected_ids, where)
    n_diff = sum(a != b for a, b in zip(chosen_prompt, rejected_prompt, strict=False))
    if n_diff > 1 or abs(len(chosen_prompt) - len(rejected_prompt)) > 1:
        # TRL 0.8.6 refused such a pair as well (they "might only differ on the last token").
        raise DataError(f"{where}: chosen and rejected split the prompt's tokens differently")
    sides = [
        ([bos_token_id, *chosen_prompt], [*chosen, eos_token_id]),
        ([bos_token_id, *rejected_prompt], [*rejected, eos_token_id]),
    ]
    # Both answers are measured against the longer one, as TRL 0.8.6 did.
    longer = max(len(answer) for _, answer in sides)
    prompt_cut = answers_cut = False
    cut_sides: list[tuple[list[int], list[int]]] = []
    for prompt, answer in sides:
        if len(prompt) + longer > max_length:
            kept = prompt[-max_prompt_length:]  # truncation_mode "keep_end", TRL 0.8.6's default
            prompt_cut |= len(kept) < len(prompt)
            prompt = kept
        if len(prompt) + longer > max_length:
            kept = answer[: max_length - max_prompt_length]
            answers_cut |= len(kept) < len(answer)
            answer = kept
        cut_sides.append((prompt, answer))
    (chosen_prompt, chosen), (rejected_prompt, rejected) = cut_sides
    # TRL 1.16 takes one prompt per pair: what follows the common prefix starts each answer.
    shared = _common_prefix(chosen_prompt, rejected_prompt)
    return TokenizedPair(
        prompt_ids=chosen_prompt[:shared],
        chosen_ids=chosen_prompt[shared:] + chosen,
        rejected_ids=rejected_prompt[shared:] + rejected,
        prompt_cut=prompt_cut,
        answers_cut=answers_cut,
        prompt_split_differs=chosen_prompt != rejected_prompt,
    )


def build_tokenized_dataset(
    records: list[dict], tokenizer, *, max_length: int, max_prompt_length: int
) -> tuple[Dataset, dict[str, int]]:
    """A TRL 1.16 dataset of token ids, built as TRL 0.8.6 did (``tokenization: trl-0.8.6``);
    also returns how many prompts and answers were cut and how many prompts split."""
    if tokenizer.bos_token_id is None:
        # TRL 0.8.6 put bos_token_id before every prompt; without one it could not train at all.
        raise ConfigError(
            "training.tokenization: trl-0.8.6 puts the tokenizer's BOS before every prompt, and "
            "this tokenizer has no bos_token; use tokenization xdetox"
        )
    prompts = [r["prompt"] for r in records]

    def ids(texts: list[str]) -> list[list[int]]:
        # One batched call per text kind; special tokens are added by hand below, as TRL did.
        return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    prompt_ids = ids(prompts)
    chosen_ids = ids([r["prompt"] + r["chosen"] for r in records])
    rejected_ids = ids([r["prompt"] + r["rejected"] for r in records])
    rows: dict[str, list[list[int]]] = {name: [] for name in TOKENIZED_COLUMNS}
    counts = {"n_prompts_truncated": 0, "n_answers_truncated": 0, "n_prompt_split_differs": 0}
    for index, (p, c, r) in enumerate(zip(prompt_ids, chosen_ids, rejected_ids, strict=True)):
        pair = tokenize_pair_trl_0_8_6(
            p, c, r,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            max_length=max_length, max_prompt_length=max_prompt_length,
            where=f"pair {index + 1}",
        )  # fmt: skip
        rows["prompt_ids"].append(pair.prompt_ids)
        rows["chosen_ids"].append(pair.chosen_ids)
        rows["rejected_ids"].append(pair.rejected_ids)
        counts["n_prompts_truncated"] += pair.prompt_cut
        counts["n_answers_truncated"] += pair.answers_cut
        counts["n_prompt_split_differs"] += pair.prompt_split_differs
    if counts["n_prompt_split_differs"]:
        log.warning(
            "%d pair(s): only one answer merged with the prompt's last token; TRL 1.16 keeps one "
            "prompt per pair, so that token is scored with the answer (TRL 0.8.6 did not)",
            counts["n_prompt_split_differs"],
        )
    return Dataset.from_dict(rows), counts


def build_pair_dataset(
    records: list[dict], tokenizer, config: TrainingConfig
) -> tuple[Dataset, dict[str, int]]:
    """The dataset TRL trains on, tokenized as ``config.tokenization`` says; also returns counts
    of what was cut (``n_prompts_truncated``, and with trl-0.8.6 ``n_answers_truncated`` and
    ``n_prompt_split_differs``)."""
    if config.tokenization == "trl-0.8.6":
        return build_tokenized_dataset(
            records,
            tokenizer,
            max_length=config.max_length,
            max_prompt_length=config.max_prompt_length,
        )
    dataset, n_cut = build_dataset(records, tokenizer, config.max_prompt_length)
    return dataset, {"n_prompts_truncated": n_cut}
