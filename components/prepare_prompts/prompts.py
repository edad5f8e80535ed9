"""Prepare evaluation prompts: read any supported source, keep the requested languages,
subsample deterministically, and write one normalised JSON-lines file.

Output lines: ``prompt_id``, ``language``, ``prompt``, ``source_file`` and, where the source has
them, ``prompt_toxicity`` (+ ``prompt_toxicity_scale``, since RTP-LX annotates on 1–5 and
RealToxicityPrompts carries a Perspective probability), ``challenging`` (RTP) and ``kind``
(the project's prompt sets: ``insult`` or ``neutral``).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.components.prepare_prompts.readers import SourcePrompt, read_prompt_file
from xdetox.errors import ConfigError, DataError
from xdetox.files import write_jsonl
from xdetox.storage import is_gcs, local_copy
from xdetox.toy.data_sources import shipped_data

log = logging.getLogger(__name__)

SOURCE_SUFFIXES = (".json", ".jsonl", ".csv")


def resolve_source(source: str | Path) -> Path:
    """Map the config's ``data.prompts`` value to a local path (``"toy"``, ``"real"`` and
    ``"real-train"`` → the shipped files)."""
    shipped = shipped_data(source, "prompts")
    if shipped is not None:
        return shipped
    path = Path(source)
    if not path.exists():
        raise DataError("prompt source not found", path)
    return path


def source_files(path: Path) -> list[Path]:
    """The files a source stands for: itself, or every json/jsonl/csv file in the folder."""
    if path.is_file():
        return [path]
    # Hidden files are skipped: editors' and our own atomic writers' temporaries start with ".".
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in SOURCE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"no {'/'.join(SOURCE_SUFFIXES)} files in folder", path)
    return files


def _read_all(files: Iterable[Path], default_language: str | None) -> list[SourcePrompt]:
    items: list[SourcePrompt] = []
    seen: dict[str, SourcePrompt] = {}
    for path in files:
        for item in read_prompt_file(path, default_language):
            pid = item.record["prompt_id"]
            first = seen.get(pid)
            if first is not None:
                raise DataError(
                    f"duplicate prompt_id {pid!r} (first seen at {first.path}:{first.line})",
                    item.path,
                    item.line,
                )
            seen[pid] = item
            items.append(item)
    return items


def normalise_languages(languages: list[str]) -> list[str]:
    """``data.languages`` as the canonical codes, in order, each once (a bad code or an empty
    list is a :class:`ConfigError` naming the key)."""
    if not languages:
        raise ConfigError("data.languages: empty list")
    out: list[str] = []
    for code in languages:
        try:
            norm = normalise_language(code)
        except ValueError as exc:
            raise ConfigError(f"data.languages: {exc}") from None
        if norm not in out:
            out.append(norm)
    return out


def subsample(items: list[SourcePrompt], k: int | None, seed: int) -> list[SourcePrompt]:
    """Up to ``k`` items, chosen with ``random.Random(seed)``, kept in their original order.

    A fresh generator per language (same seed) means a language's sample does not change when
    other languages are added to or removed from the request.
    """
    if k is None or len(items) <= k:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in chosen]


def prepare_prompts(
    source: str | Path,
    output_path: str | Path,
    *,
    languages: list[str] | None,
    max_per_language: int | None,
    seed: int,
    default_language: str | None = None,
) -> dict[str, int]:
    """Write the normalised prompts of ``languages`` to ``output_path``; return counts per language.

    ``languages=None`` keeps every language found. ``source`` may be a ``gs://`` file or folder:
    it is downloaded to a temporary folder first (file names carry RTP-LX languages, so they are
    kept). Output is sorted by language, then by original order (file order, then line order).
    Every problem with the input raises before anything is written.
    """
    if max_per_language is not None and max_per_language <= 0:
        raise ConfigError(f"data.max_prompts_per_language: must be > 0, got {max_per_language}")
    wanted = None if languages is None else normalise_languages(languages)
    default = None
    if default_language is not None:
        try:
            default = normalise_language(default_language)
        except ValueError as exc:
            raise ConfigError(f"default_language: {exc}") from None

    with local_copy(resolve_source(source) if not is_gcs(source) else source) as path:
        items = _read_all(source_files(path), default)

    by_language: dict[str, list[SourcePrompt]] = defaultdict(list)
    for item in items:
        by_language[item.language].append(item)

    if wanted is None:
        wanted = sorted(by_language)
    missing = [lang for lang in wanted if lang not in by_language]
    if missing:
        raise DataError(
            f"no prompts for requested language(s) {', '.join(missing)} "
            f"(found: {', '.join(sorted(by_language)) or 'none'})",
            source,
        )

    counts: dict[str, int] = {}
    records: list[dict] = []
    for lang in sorted(wanted):
        kept = subsample(by_language[lang], max_per_language, seed)
        counts[lang] = len(kept)
        records.extend(item.record for item in kept)

    write_jsonl(output_path, records)
    log.info("prepared %d prompts from %s: %s", len(records), source, counts)
    return counts
