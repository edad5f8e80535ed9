"""Which prompts the per-language stages use: languages chosen, the first N of each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xdetox.components.generate.prompt_file import Prompt
from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.errors import ConfigError, DataError

ALL_LANGUAGES = "ALL"  # the mean-over-languages row, as in the report stage


def select_prompts(
    prompts: Sequence[Prompt],
    languages: Sequence[str] | None,
    max_per_language: int | None,
    source: Path,
    key: str,
) -> dict[str, list[Prompt]]:
    """Prompts per language (file order; the first ``max_per_language`` of each)."""
    found: dict[str, list[Prompt]] = {}
    for p in prompts:
        found.setdefault(p.language, []).append(p)
    if languages is None:
        wanted = sorted(found)
    else:
        wanted = []
        for code in languages:
            try:
                wanted.append(normalise_language(code))
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        absent = [w for w in wanted if w not in found]
        if absent:
            raise DataError(
                f"no prompts for language(s) {', '.join(absent)} (found: "
                f"{', '.join(sorted(found))}; set by {key})",
                source,
            )
    return {lang: found[lang][:max_per_language] for lang in dict.fromkeys(wanted)}
