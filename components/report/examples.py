"""Examples for the report: what the models said where the base model was most toxic.

Numbers say how much a model changed, never what it said. For each language this module picks
the ``top_prompts`` prompts where the *ranking* model (the base model in the detox pipeline,
the evaluated model in the eval pipeline) was most toxic and keeps, for every model, its
``samples_per_model`` most toxic continuations of each of those prompts with their scores, so
the report can set base and tuned side by side on the same prompt. The result is small and
bounded (prompts × models × samples, a continuation is ~20 tokens), whatever the number of
samples generated: it travels as one JSON file per language between the pipeline's tasks.

Ranking, deterministic so that a rerun shows the same prompts:
  1. the ranking model's highest TOXICITY over the prompt's samples (what EMT averages), higher
     first;
  2. ties: its mean TOXICITY over the prompt's scored samples, higher first;
  3. still tied: ``prompt_id`` in ascending order (as text).
A prompt whose samples by the ranking model all lack a score cannot be ranked and is left out;
within a model, continuations are ordered by score (higher first, unscored last), then
``sample_index``.

Matched words: for the word-list scorers, what the scorer matched is marked in the text, taken
from the scorer's own matching code, never re-implemented here: ``offline`` (the toy lexicon)
is re-run through :meth:`Lexicon.find` (it records no details), ``wordlist`` (LDNOOBW) reports
its matched entries in ``score_details.matches``, located in the text with the list's own
normalisation and word splitting. Each mark is a ``[start, end)`` character range of the
original text. When a position cannot be located exactly (e.g. a normalisation that changes the
text's length across characters), the matched words are still listed but none is marked: a
mark in the wrong place would be worse than none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from xdetox.components.score import lexicon as lexicon_module
from xdetox.components.score import wordlist as wordlist_module
from xdetox.errors import DataError
from xdetox.files import iter_jsonl, require_fields, write_json
from xdetox.records import BASE_LABEL, TOXICITY

FORMAT = "xdetox-examples/1"
DEFAULT_TOP_PROMPTS = 3
DEFAULT_SAMPLES_PER_MODEL = 2
# The fields examples are built from (a subset of SCORE_FIELDS: no n_tokens/finish_reason).
_FIELDS = ("model", "prompt_id", "language", "prompt", "sample_index", "text", "scores")
# What the offline scorer writes as its id (LexiconScorer.id): only text scored by the lexicon
# shipped here is re-matched, so a score file from another lexicon version gets no marks.
OFFLINE_SCORER_ID = f"offline-lexicon-{lexicon_module.LEXICON_VERSION}"


class Sample(TypedDict):
    sample_index: int
    text: str
    score: float | None  # TOXICITY; None: the scorer could not score it
    matches: list[str]  # the word-list entries the scorer matched (empty for classifiers)
    marks: list[list[int]]  # [start, end) character ranges of ``text`` to mark


class ModelContinuations(TypedDict):
    model: str
    max: float | None  # TOXICITY over all the prompt's samples by this model
    mean: float | None
    n_samples: int
    n_scored: int
    samples: list[Sample]  # the most toxic ones (at most samples_per_model)


class PromptExample(TypedDict):
    rank: int  # 1 = where the ranking model was most toxic
    prompt_id: str
    prompt: str
    models: list[ModelContinuations]  # the ranking model first


class LanguageExamples(TypedDict):
    language: str
    ranked_by: str  # the model whose toxicity picked the prompts
    attribute: str
    scorer: str
    n_prompts: int  # prompts the ranking model has a score for (the pool picked from)
    prompts: list[PromptExample]


# ------------------------------------------------------------------------------ reading
def _read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every record of the score files, checked for the fields the examples need."""
    records: list[dict[str, Any]] = []
    for path in paths:
        for line, record in iter_jsonl(path):
            require_fields(record, _FIELDS, path, line)
            if not isinstance(record["scores"], dict):
                raise DataError("field 'scores' must be an object", path, line)
            records.append(record)
    return records


def _score(record: dict[str, Any], attribute: str) -> float | None:
    value = record["scores"].get(attribute)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(float(value)) else float(value)


# ------------------------------------------------------------------------------ marks
def _normalized_with_offsets(
    text: str, normalize: Callable[[str], str]
) -> tuple[str, list[int], list[str]] | None:
    """``normalize(text)`` with, per character, the index of the original character it came
    from, and each original character's normalised piece; None when normalising character by
    character does not give the same text (then no position can be mapped back exactly)."""
    pieces = [normalize(char) for char in text]
    joined = "".join(pieces)
    if joined != normalize(text):
        return None
    origin = [index for index, piece in enumerate(pieces) for _ in piece]
    return joined, origin, pieces


def _token_spans(normalized: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Where each token lies in the normalised text. Tokens are the text's word runs in order
    and only non-word characters lie between them, so finding each one after the previous
    one's end is exact; None if one is not found (a tokenizer that changed the text)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for token in tokens:
        start = normalized.find(token, cursor)
        if start < 0:
            return None
        cursor = start + len(token)
        spans.append((start, cursor))
    return spans


def _to_original(span: tuple[int, int], origin: list[int], pieces: list[str]) -> list[int]:
    start, end = origin[span[0]], origin[span[1] - 1] + 1
    # Characters that normalise to nothing (combining accents) belong to the letter before.
    while end < len(pieces) and pieces[end] == "":
        end += 1
    return [start, end]


def _merge(marks: Iterable[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(marks):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


@cache
def _lexicons() -> dict[str, lexicon_module.Lexicon]:
    return lexicon_module.load_lexicons()


def _lexicon_marks(text: str, language: str) -> tuple[list[str], list[list[int]]]:
    """The offline scorer's matches (:meth:`Lexicon.find`, its own matcher) and their ranges."""
    tag = lexicon_module.resolve_language(language, _lexicons())
    if tag is None:
        return [], []
    found = _lexicons()[tag].find(text)
    matches = list(dict.fromkeys(m.term.text for m in found))
    mapped = _normalized_with_offsets(text, lexicon_module.normalize)
    if mapped is None:
        return matches, []
    normalized, origin, pieces = mapped
    spans = _token_spans(normalized, lexicon_module.tokenize(text))
    if spans is None:
        return matches, []
    marks = [
        _to_original((spans[m.start][0], spans[m.start + len(m.term.words) - 1][1]), origin, pieces)
        for m in found
    ]
    return matches, _merge(marks)


def _wordlist_marks(text: str, details: dict[str, Any]) -> tuple[list[str], list[list[int]]]:
    """The wordlist scorer's matched entries (``score_details.matches``: its own matcher's
    result), located in the text with the list's normalisation and word splitting."""
    matches = [str(m) for m in details.get("matches") or [] if str(m).strip()]
    if not matches:
        return [], []
    normalize, words = wordlist_module.normalize, wordlist_module.words
    mapped = _normalized_with_offsets(text, normalize)
    if mapped is None:
        return matches, []
    normalized, origin, pieces = mapped
    spans: list[tuple[int, int]] = []
    if str(details.get("list_language", "")) in wordlist_module.NO_SPACES:
        # Written without spaces: the scorer matched the entry as a substring.
        for entry in matches:
            key = normalize(entry)
            start = normalized.find(key) if key else -1
            while start >= 0:
                spans.append((start, start + len(key)))
                start = normalized.find(key, start + 1)
    else:
        tokens = words(normalized)
        token_spans = _token_spans(normalized, tokens)
        if token_spans is None:
            return matches, []
        for entry in matches:
            key = words(normalize(entry))
            for i in range(len(tokens) - len(key) + 1):
                if key and tokens[i : i + len(key)] == key:
                    spans.append((token_spans[i][0], token_spans[i + len(key) - 1][1]))
    return matches, _merge(_to_original(span, origin, pieces) for span in spans)


def matched_words(record: dict[str, Any]) -> tuple[list[str], list[list[int]]]:
    """``(matched entries, [start, end) ranges in record["text"])`` for a scored record; empty
    for scorers that match no words (classifiers, Perspective) or could not score it."""
    text, language = str(record["text"]), str(record["language"])
    details = record.get("score_details")
    if isinstance(details, dict) and details.get("wordlist") == "LDNOOBW":
        return _wordlist_marks(text, details)
    if record.get("scorer") == OFFLINE_SCORER_ID:
        return _lexicon_marks(text, language)
    return [], []


# ------------------------------------------------------------------------------ picking
def _sample(record: dict[str, Any], attribute: str) -> Sample:
    matches, marks = matched_words(record)
    return Sample(
        sample_index=int(record["sample_index"]),
        text=str(record["text"]),
        score=_score(record, attribute),
        matches=matches,
        marks=marks,
    )


def _stats(scores: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    scored = [s for s in scores if s is not None]
    if not scored:
        return None, None, 0
    return max(scored), sum(scored) / len(scored), len(scored)


def _most_toxic_first(record: dict[str, Any], attribute: str) -> tuple[bool, float, int]:
    score = _score(record, attribute)
    return (score is None, -(score or 0.0), int(record["sample_index"]))


def examples_for_language(
    records: Sequence[dict[str, Any]],
    language: str,
    *,
    ranked_by: str,
    models: Sequence[str],
    top_prompts: int = DEFAULT_TOP_PROMPTS,
    samples_per_model: int = DEFAULT_SAMPLES_PER_MODEL,
    attribute: str = TOXICITY,
) -> LanguageExamples:
    """One language's examples from its score records (see the module docstring)."""
    by_model: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in models}
    for record in records:
        if str(record["model"]) in by_model and str(record["language"]) == language:
            by_model[str(record["model"])].setdefault(str(record["prompt_id"]), []).append(record)
    ranking: list[tuple[float, float, str]] = []
    for prompt_id, samples in by_model[ranked_by].items():
        highest, mean, _n = _stats([_score(r, attribute) for r in samples])
        if highest is not None and mean is not None:
            ranking.append((-highest, -mean, prompt_id))
    ranking.sort()
    prompts: list[PromptExample] = []
    for rank, (_h, _m, prompt_id) in enumerate(ranking[:top_prompts], start=1):
        continuations: list[ModelContinuations] = []
        for model in models:
            samples = by_model[model].get(prompt_id, [])
            highest, mean, n_scored = _stats([_score(r, attribute) for r in samples])
            shown = sorted(samples, key=lambda r: _most_toxic_first(r, attribute))
            continuations.append(
                ModelContinuations(
                    model=model, max=highest, mean=mean, n_samples=len(samples),
                    n_scored=n_scored,
                    samples=[_sample(r, attribute) for r in shown[:samples_per_model]],
                )
            )  # fmt: skip
        first = by_model[ranked_by][prompt_id][0]
        prompts.append(
            PromptExample(
                rank=rank, prompt_id=prompt_id, prompt=str(first["prompt"]), models=continuations
            )
        )
    scorers = sorted({str(r.get("scorer", "")) for r in records if r.get("scorer")})
    return LanguageExamples(
        language=language,
        ranked_by=ranked_by,
        attribute=attribute,
        scorer=", ".join(scorers),
        n_prompts=len(ranking),
        prompts=prompts,
    )


def build_examples(
    score_files: Sequence[str | Path],
    *,
    top_prompts: int = DEFAULT_TOP_PROMPTS,
    samples_per_model: int = DEFAULT_SAMPLES_PER_MODEL,
    ranked_by: str | None = None,
) -> list[LanguageExamples]:
    """Examples per language (sorted) from score files of one or more models and languages.

    ``ranked_by``: the model whose toxicity picks the prompts; by default the base model when
    the files hold one, else the first model found. The others follow in the order found.
    Files without a record give no examples (an empty list), not an error.
    """
    if top_prompts < 1 or samples_per_model < 1:
        raise ValueError("top_prompts and samples_per_model must be at least 1")
    records = _read_records(score_files)
    models = list(dict.fromkeys(str(r["model"]) for r in records))
    if not models:
        return []  # nothing generated (the report says so), not a reason to fail a run
    if ranked_by is None:
        ranked_by = BASE_LABEL if BASE_LABEL in models else models[0]
    elif ranked_by not in models:
        raise DataError(f"no samples of model {ranked_by!r} (found: {', '.join(models)})")
    ordered = [ranked_by, *(m for m in models if m != ranked_by)]
    languages = sorted({str(r["language"]) for r in records})
    return [
        examples_for_language(
            records, language, ranked_by=ranked_by, models=ordered,
            top_prompts=top_prompts, samples_per_model=samples_per_model,
        )
        for language in languages
    ]  # fmt: skip


# ------------------------------------------------------------------------------ files
def write_examples(path: str | Path, examples: Sequence[LanguageExamples]) -> None:
    """One examples file (atomically): ``{"format": FORMAT, "languages": [...]}``."""
    write_json(path, {"format": FORMAT, "languages": list(examples)})


def read_examples(paths: Iterable[str | Path]) -> list[LanguageExamples]:
    """Every language of the given examples files, sorted by language; a language found in
    two files is an error (it would be shown twice)."""
    found: dict[str, LanguageExamples] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"not a readable examples file ({type(exc).__name__})", path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"not an examples file (format {FORMAT!r} expected)", path)
        for language in data.get("languages", []):
            name = str(language.get("language"))
            if name in found:
                raise DataError(f"language {name!r} is in two examples files", path)
            found[name] = language
    return [found[name] for name in sorted(found)]
