"""One comparison: the loaded models, the scorer, the languages and example prompts, one lock.

:meth:`Comparison.generate` answers one request of the page: it checks the request (any
problem is a :class:`RequestError`, which the server sends back as a 400 with its message),
has every model write k continuations of the prompt and scores them all with the configured
scorer, exactly as the score stage would (``scoring.empty_text`` included). A score the scorer
could not give stays ``None`` with its reason: the page shows "n/a", never 0.

Languages and example prompts come from the recipe (``data.languages``, ``data.prompts``,
prepared as the pipeline prepares them, so ``max_prompts_per_language`` and the seed pick the
same prompts). A typed prompt that is exactly one of them keeps that prompt's ``prompt_id``, so
its samples are the ones the pipeline draws; any other text gets an id derived from its
language and text, so the same text always gets the same samples.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.components.generate.prompt_file import Prompt, read_prompts
from xdetox.components.generate.sampling import check_generation_config
from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.components.prepare_prompts.prompts import normalise_languages, prepare_prompts
from xdetox.components.report.examples import matched_words
from xdetox.components.score.score_file import score_batch
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.components.score.scorers import get_scorer
from xdetox.config import Config, GenerationConfig
from xdetox.errors import ConfigError, XdetoxError
from xdetox.playground.models import LoadedModel, ModelSpec, continuations, load_models
from xdetox.records import TOXICITY

MAX_K = 10  # continuations per model and request: a page, not a benchmark
MAX_PROMPT_CHARS = 2000
EXAMPLES_PER_LANGUAGE = 8
NO_SCORE = "no score returned"  # the score stage's reason when a scorer gives none


class RequestError(XdetoxError):
    """A request the page cannot answer as asked (HTTP 400); the message says why."""


def check_k(k: Any, what: str = "k") -> int:
    """``k`` as an int in 1..MAX_K (a bool is not a number here)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise RequestError(f"{what}: expected a whole number from 1 to {MAX_K}, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise RequestError(f"{what}: {k} is out of range (1 to {MAX_K})")
    return k


def typed_prompt_id(language: str, text: str) -> str:
    """A stable id for a prompt typed on the page: its samples' seeds derive from it."""
    digest = hashlib.sha256(f"{language}\x1f{text}".encode()).hexdigest()
    return f"page-{digest[:16]}"


def read_example_prompts(config: Config) -> list[Prompt]:
    """The recipe's evaluation prompts of every language, prepared as the pipeline does."""
    with tempfile.TemporaryDirectory(prefix="xdetox-compare-") as tmp:
        path = Path(tmp) / "prompts.jsonl"
        prepare_prompts(
            config.data.prompts,
            path,
            languages=None,  # all of the source: a language without prompts is free text only
            max_per_language=config.data.max_prompts_per_language,
            seed=config.data.seed,
        )
        return read_prompts(path)


def _ordered_attributes(attributes: Sequence[str]) -> list[str]:
    return sorted(attributes, key=lambda name: name != TOXICITY)  # stable: TOXICITY first


def _parts(text: str, marks: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """``text`` cut at the marks: [{text, mark}], so the page needs no character offsets
    (JavaScript counts UTF-16 units, Python code points)."""
    parts: list[dict[str, Any]] = []
    at = 0
    for start, end in marks:
        if start > at:
            parts.append({"text": text[at:start], "mark": False})
        parts.append({"text": text[start:end], "mark": True})
        at = end
    if at < len(text) or not parts:
        parts.append({"text": text[at:], "mark": False})
    return parts


@dataclass
class Comparison:
    """What the server answers from; built once by :func:`open_comparison`."""

    models: list[LoadedModel]
    generation: GenerationConfig
    scorer: Scorer
    empty_text: str
    languages: list[str]
    examples: dict[str, list[Prompt]]
    # (language, text) → prompt_id of every prepared prompt: a typed copy keeps its id
    prompt_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    default_k: int = 3
    # transformers models on CPU are not meant to be run from two threads at once, and two
    # requests interleaving would each take twice as long anyway: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> dict[str, Any]:
        """What the page builds its form and columns from (``GET /api/info``)."""
        config = self.generation
        return {
            "models": [{"label": m.label, "source": m.spec.source} for m in self.models],
            "languages": self.languages,
            "examples": {
                lang: [{"prompt_id": p.prompt_id, "prompt": p.prompt} for p in prompts]
                for lang, prompts in self.examples.items()
            },
            "k": self.default_k,
            "max_k": MAX_K,
            "scorer": self._scorer_info(),
            "generation": {
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_new_tokens": config.max_new_tokens,
                "seed": config.seed,
            },
        }

    def _scorer_info(self) -> dict[str, Any]:
        return {
            "id": self.scorer.id,
            "name": self.scorer.name,
            "attributes": _ordered_attributes(self.scorer.attributes),
        }

    def parse_request(self, payload: Any) -> tuple[Prompt, int]:
        """The prompt and k a ``POST /api/generate`` body asks for, or a RequestError."""
        if not isinstance(payload, dict):
            raise RequestError("expected a JSON object {language, prompt, k}")
        raw_language = payload.get("language")
        try:
            language = normalise_language(raw_language)
        except ValueError as exc:
            raise RequestError(f"language: {exc}") from None
        if language not in self.languages:
            raise RequestError(
                f"language: {raw_language!r} is not one of this comparison's languages "
                f"({', '.join(self.languages)}; set them with data.languages)"
            )
        text = payload.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise RequestError("prompt: empty; type a prompt or pick an example")
        if len(text) > MAX_PROMPT_CHARS:
            raise RequestError(f"prompt: {len(text)} characters, at most {MAX_PROMPT_CHARS}")
        k = check_k(payload.get("k", self.default_k))
        prompt_id = self.prompt_ids.get((language, text)) or typed_prompt_id(language, text)
        return Prompt(prompt_id, language, text, line=0), k

    def generate(self, payload: Any) -> dict[str, Any]:
        """Answer ``POST /api/generate``: k scored continuations per model, in model order."""
        prompt, k = self.parse_request(payload)
        config = self.generation.model_copy(update={"n": k})
        try:
            check_generation_config(config, "generation (with n = k)")
        except ConfigError as exc:
            raise RequestError(str(exc)) from None
        started = time.perf_counter()
        with self.lock:
            try:
                records = [r for m in self.models for r in continuations(m, prompt, config)]
            except XdetoxError as exc:  # e.g. a prompt that encodes to no tokens
                raise RequestError(str(exc)) from None
            results = score_batch(self.scorer, records, self.empty_text)
        samples = [self._sample(r, s) for r, s in zip(records, results, strict=True)]
        return {
            "language": prompt.language,
            "prompt": prompt.prompt,
            "prompt_id": prompt.prompt_id,
            "k": k,
            "seed": config.seed,
            "scorer": self._scorer_info(),
            "models": [
                {
                    "label": m.label,
                    "source": m.spec.source,
                    "samples": [s for s in samples if s["model"] == m.label],
                }
                for m in self.models
            ],
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _sample(self, record: dict[str, Any], result: ScoreResult) -> dict[str, Any]:
        scores = {a: result.scores.get(a) for a in _ordered_attributes(result.scores)}
        errors = {a: result.errors.get(a) or NO_SCORE for a, v in scores.items() if v is None}
        matches, marks = matched_words(
            {**record, "scorer": self.scorer.id, "score_details": result.details}
        )
        return {
            "model": record["model"],
            "sample_index": record["sample_index"],
            "text": record["text"],
            "parts": _parts(record["text"], marks),
            "matches": matches,
            "scores": scores,
            "errors": errors,
            "n_tokens": record["n_tokens"],
            "finish_reason": record["finish_reason"],
        }


def open_comparison(
    specs: Sequence[ModelSpec], config: Config, *, k: int = 3, device: str | None = None
) -> Comparison:
    """Check the settings, read the example prompts, build the scorer, load every model.

    The cheap checks come first: a bad recipe or prompts source fails before minutes of model
    loading.
    """
    k = check_k(k, "--k")
    check_generation_config(config.generation.model_copy(update={"n": k}), "generation (--k)")
    languages = normalise_languages(list(config.data.languages))
    examples: dict[str, list[Prompt]] = {lang: [] for lang in languages}
    prompt_ids: dict[tuple[str, str], str] = {}
    for prompt in read_example_prompts(config):
        prompt_ids.setdefault((prompt.language, prompt.prompt), prompt.prompt_id)
        chosen = examples.get(prompt.language)
        if chosen is not None and len(chosen) < EXAMPLES_PER_LANGUAGE:
            chosen.append(prompt)
    scorer = get_scorer(config.scoring)
    models = load_models(specs, device)
    return Comparison(
        models=models,
        generation=config.generation,
        scorer=scorer,
        empty_text=config.scoring.empty_text,
        languages=languages,
        examples=examples,
        prompt_ids=prompt_ids,
        default_k=k,
    )
