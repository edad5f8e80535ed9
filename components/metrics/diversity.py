"""Distinct-n diversity of generations, as XG computes it.

For each prompt, over all of its samples tokenized with one tokenizer: the number of unique
n-grams divided by the **total number of unigram tokens** of those samples (the same denominator
for n = 1, 2, 3, so dist-2 and dist-3 are not normalised by their own n-gram counts); then the
mean over prompts. n-grams never cross from one sample into the next.

Empty samples contribute no tokens. A prompt whose samples have no tokens at all has no ratio:
it is skipped (not counted as 0) and reported in ``n_prompts_no_tokens``. Prompts are prompt
ids whatever ``metrics.group_by`` says: XG's ``xg/eval/metric_diversity.py`` (Li, Yong & Bach
2024, arXiv:2406.16235) takes each block of one prompt's consecutive samples, so two records
with the same prompt text stay two prompts there too.

What a token is (``metrics.distinct_tokens``), with a model tokenizer:

* ``ids`` (default): the token ids, without special tokens;
* ``decoded`` (XG's ``compute_diversity``): the text is tokenized as the tokenizer does by
  default (special tokens included), each id is decoded **on its own** with special tokens
  skipped, and empty strings are dropped. Ids that decode to the same string (SentencePiece's
  "▁word" and "word" both decode to "word") are then one token, an id that decodes to nothing
  (``</s>``) is no token, and the denominator counts the non-empty strings. n-grams are taken
  over that filtered list (neighbours across a dropped string become adjacent) and keyed, as
  there, by their strings joined with "_".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from xdetox.errors import ConfigError, XdetoxError
from xdetox.models import load_tokenizer as load_model_tokenizer
from xdetox.models import resolve_model

Tokenize = Callable[[str], Sequence[Hashable]]
"""A tokenizer for distinct-n: text -> tokens (strings or token ids)."""

NS: tuple[int, ...] = (1, 2, 3)


def whitespace_tokenize(text: str) -> list[str]:
    """Split on runs of whitespace (useless for languages written without spaces: zh, ja)."""
    return text.split()


DISTINCT_TOKENS: tuple[str, ...] = ("ids", "decoded")

# XG's n-gram key: the decoded strings joined with "_" (``distinct_tokens: decoded``).
DECODED_JOINER = "_"


def ngram_joiner(spec: str, distinct_tokens: str) -> str | None:
    """How :func:`distinct_n` keys n-grams for these settings: None (tuples), or XG's "_"."""
    return DECODED_JOINER if distinct_tokens == "decoded" and spec != "whitespace" else None


def decoded_tokenize(tokenizer: Any) -> Tokenize:
    """XG's tokens of a text: each id of ``tokenizer(text)`` decoded on its own (special tokens
    skipped), empty strings dropped (see the module docstring)."""
    strings: dict[int, str] = {}  # one decode per id: texts repeat the same few thousand ids

    def tokenize(text: str) -> list[str]:
        out = []
        for token_id in tokenizer(text)["input_ids"]:
            if token_id not in strings:
                strings[token_id] = tokenizer.decode(token_id, skip_special_tokens=True)
            if strings[token_id]:
                out.append(strings[token_id])
        return out

    return tokenize


def load_tokenizer(
    spec: str, model_dir: str | Path | None = None, distinct_tokens: str = "ids"
) -> Tokenize:
    """Return the tokenizer that ``metrics.diversity_tokenizer`` names.

    ``"whitespace"``: :func:`whitespace_tokenize`. ``"model"``: the ``AutoTokenizer`` saved in
    ``model_dir`` (the base model). Anything else: a tokenizer folder or id for
    ``AutoTokenizer.from_pretrained`` (XG used the mT5 tokenizer). With ``distinct_tokens``
    ``ids``, model tokenizers are called without special tokens, so a BOS/EOS token does not
    count as a word of every sample; with ``decoded``, see :func:`decoded_tokenize`.
    """
    if distinct_tokens not in DISTINCT_TOKENS:
        raise ConfigError(
            f"metrics.distinct_tokens: unknown value {distinct_tokens!r} "
            f"(known: {', '.join(DISTINCT_TOKENS)})"
        )
    if spec == "whitespace":
        return whitespace_tokenize
    if spec == "model":
        if model_dir is None:
            raise ConfigError(
                "metrics.diversity_tokenizer: 'model' needs the model folder (model_dir); "
                "give one, or set 'whitespace' or a tokenizer path"
            )
        source = str(model_dir)
    else:
        source = spec
    try:
        # Any model source (folder, gs://, Hub id); only its tokenizer files are fetched.
        tokenizer = load_model_tokenizer(resolve_model(source, tokenizer_only=True))
    except XdetoxError as exc:
        raise ConfigError(
            f"metrics.diversity_tokenizer: cannot load tokenizer from {source!r} ({exc})"
        ) from None

    if distinct_tokens == "decoded":
        return decoded_tokenize(tokenizer)

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return tokenize


def distinct_n(
    samples: Iterable[Sequence[Hashable]], ns: Sequence[int] = NS, joiner: str | None = None
) -> dict[int, float]:
    """Distinct-n of one prompt's tokenized samples: unique n-grams / total unigram tokens.

    n-grams are told apart as tuples, or, with ``joiner`` (string tokens only), by their
    tokens joined with it, as XG keyed them (so ("a_", "b") and ("a", "_b") are one bigram).
    Returns ``{n: ratio}``; every ratio is NaN when the samples hold no tokens.
    """
    total = 0
    unique: dict[int, set[Hashable]] = {n: set() for n in ns}
    for tokens in samples:
        tokens = list(tokens)
        total += len(tokens)
        for n in ns:
            # Within one sample only: n-grams do not span sample boundaries.
            grams = (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
            unique[n].update(grams if joiner is None else (joiner.join(g) for g in grams))
    if total == 0:
        return {n: math.nan for n in ns}
    return {n: len(unique[n]) / total for n in ns}


def diversity_metrics(
    table: pd.DataFrame, tokenize: Tokenize, ns: Sequence[int] = NS, joiner: str | None = None
) -> pd.DataFrame:
    """One row per (model, language): ``dist_<n>`` (mean over prompts) and
    ``n_prompts_no_tokens`` (prompts skipped because their samples had no tokens).
    ``joiner``: see :func:`distinct_n` (:func:`ngram_joiner` gives it for the settings)."""
    rows = []
    groups = table.groupby(["model", "language", "prompt_id"], sort=True)["text"]
    per_prompt: dict[tuple[str, str], list[dict[int, float]]] = {}
    for (model, language, _prompt_id), texts in tqdm(
        groups, desc="distinct-n", unit=" prompts", disable=None, total=groups.ngroups
    ):
        ratios = distinct_n((tokenize(text) for text in texts), ns, joiner)
        per_prompt.setdefault((model, language), []).append(ratios)
    for (model, language), prompt_ratios in per_prompt.items():
        row: dict[str, object] = {"model": model, "language": language}
        kept = [r for r in prompt_ratios if not math.isnan(r[ns[0]])]
        for n in ns:
            row[f"dist_{n}"] = sum(r[n] for r in kept) / len(kept) if kept else math.nan
        row["n_prompts_no_tokens"] = len(prompt_ratios) - len(kept)
        rows.append(row)
    return pd.DataFrame(rows)
