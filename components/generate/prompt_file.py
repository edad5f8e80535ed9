"""Reading the prepared prompts file (output of prepare_prompts) for a generation backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.errors import ConfigError, DataError
from xdetox.files import iter_jsonl, require_fields
from xdetox.records import PROMPT_FIELDS


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    language: str
    prompt: str
    line: int  # in the prompts file, for error messages
    # The prompt set it belongs to (e.g. insult, neutral): travels into every sample, so the
    # metrics can show which set draws toxicity from the base model at all.
    kind: str | None = None


def read_prompts(path: str | Path, language: str | None = None) -> list[Prompt]:
    """Prompts of ``language`` (all when None), in file order.

    Duplicate prompt ids are refused: each sample's seed derives from its prompt id, so two
    prompts sharing an id would also share their random numbers.
    """
    path = Path(path)
    wanted = None
    if language is not None:
        try:
            wanted = normalise_language(language)
        except ValueError as exc:
            raise ConfigError(f"language: {exc}") from None
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    languages: set[str] = set()
    for line, rec in iter_jsonl(path):
        require_fields(rec, PROMPT_FIELDS, path, line)
        text = rec["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise DataError("empty or non-string 'prompt'", path, line)
        pid = str(rec["prompt_id"])
        if pid in seen:
            raise DataError(f"duplicate prompt_id {pid!r} (first on line {seen[pid]})", path, line)
        seen[pid] = line
        try:
            lang = normalise_language(rec["language"])
        except ValueError as exc:
            raise DataError(f"field 'language': {exc}", path, line) from None
        languages.add(lang)
        if wanted is None or lang == wanted:
            kind = rec.get("kind")
            kind = kind.strip() if isinstance(kind, str) and kind.strip() else None
            prompts.append(Prompt(pid, lang, text, line, kind))
    if not prompts:
        if wanted is not None:
            found = ", ".join(sorted(languages)) or "none"
            raise DataError(f"no prompts for language {wanted!r} (found: {found})", path)
        raise DataError("no prompts in file", path)
    return prompts
