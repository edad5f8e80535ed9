"""Generate the toy data of the interpretability stages under ``xdetox/toy/data/interpret/``.

    .venv/bin/python tools/make_toy_interpret_data.py           # rewrite the files
    .venv/bin/python tools/make_toy_interpret_data.py --check   # exit 1 if they are stale

Two files, both made from the toy world of ``tools/make_toy_data.py`` (same templates):

- ``train.csv``: the Jigsaw ``train.csv`` format (``id, comment_text, toxic, severe_toxic,
  obscene, threat, insult, identity_hate``) holding English sentences of the toy corpus that the
  toy model was trained on, toxic and neutral, for the linear toxicity probe. The sub-labels
  come from the kind of toxic template a sentence uses (see ``SUBLABELS``).
- ``parallel.jsonl``: English sentences and their translations into de, es, fr, ru and zh-hans
  (``{"id", "language", "en", "text", "toxic"}``), for the cross-lingual alignment stage. The
  templates of every language are written index by index as translations of each other
  (subject i, frame j, predicate k, tail l mean the same thing everywhere), so a sentence built
  from the same indices in two languages is a translation. The same English sentences are used
  for every language, as XG did with its 200 English prompts.

Seeded: rerunning the script writes byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_toy_data import LANGUAGES, Language, continuations, openings  # noqa: E402

from xdetox.files import write_text  # noqa: E402

OUT_DIR = REPO / "xdetox" / "toy" / "data" / "interpret"
CORPUS = REPO / "xdetox" / "toy" / "data" / "corpus.jsonl"
SEED = 20240707
JIGSAW_ROWS = 600
JIGSAW_TOXIC = 240  # 40%: enough of both classes for a 90/10 split of a small set
PARALLEL_PAIRS = 60  # English sentences, each translated into every other toy language
PARALLEL_TOXIC_SHARE = 0.35  # as in the corpus
JIGSAW_COLUMNS = ("id", "comment_text", "toxic", "severe_toxic", "obscene", "threat", "insult",
                  "identity_hate")  # fmt: skip
# Template category → the Jigsaw columns set to 1 besides ``toxic``. Threats count as severe
# (Jigsaw's severe_toxic is a subset of toxic); this is the toy data's own convention.
SUBLABELS = {
    "insult": ("insult",),
    "profanity": ("obscene",),
    "threat": ("threat", "severe_toxic"),
    "identity": ("identity_hate", "insult"),
}


def _check_aligned() -> None:
    """Every language must have the same number of each kind of template, or indices drift."""

    def shape(lang: Language) -> tuple:
        return (
            len(lang.subjects),
            len(lang.frames),
            len(lang.neutral),
            len(lang.neutral_tails),
            [(k, len(v)) for k, v in lang.toxic.items()],
            len(lang.toxic_tails),
        )

    ref = shape(LANGUAGES[0])
    for lang in LANGUAGES[1:]:
        if shape(lang) != ref:
            raise SystemExit(f"{lang.code}: templates are not aligned with English")


def _toxic_category(lang: Language, continuation: str) -> str:
    """Which kind of toxic template a toxic continuation (with end mark) comes from."""
    for category, predicates in lang.toxic.items():
        for p in predicates:
            if any(continuation == f"{p}{t}{lang.end}" for t in lang.toxic_tails):
                return category
    raise SystemExit(f"{lang.code}: {continuation!r} matches no toxic template")


def _split_sentence(lang: Language, text: str, toxic: bool) -> str:
    """The continuation part of a corpus sentence (the one that matches a template)."""
    for cont in continuations(lang, toxic):
        if text.endswith(lang.sep + cont):
            return cont
    raise SystemExit(f"{lang.code}: corpus sentence matches no continuation: {text!r}")


def build_jigsaw(rng: random.Random) -> str:
    en = LANGUAGES[0]
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    english = [r for r in rows if r["language"] == "en"]
    seen: set[str] = set()
    unique = []
    for r in english:  # a repeated sentence would leak between training and validation
        if r["text"] not in seen:
            seen.add(r["text"])
            unique.append(r)
    toxic = [r for r in unique if r["toxic"]]
    neutral = [r for r in unique if not r["toxic"]]
    chosen = rng.sample(toxic, JIGSAW_TOXIC) + rng.sample(neutral, JIGSAW_ROWS - JIGSAW_TOXIC)
    rng.shuffle(chosen)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JIGSAW_COLUMNS)
    for k, r in enumerate(chosen):
        labels = dict.fromkeys(JIGSAW_COLUMNS[2:], 0)
        if r["toxic"]:
            labels["toxic"] = 1
            category = _toxic_category(en, _split_sentence(en, r["text"], True))
            for column in SUBLABELS[category]:
                labels[column] = 1
        else:
            _split_sentence(en, r["text"], False)  # every row must come from the templates
        row_id = hashlib.sha256(f"{k}:{r['text']}".encode()).hexdigest()[:16]
        writer.writerow([row_id, r["text"], *labels.values()])
    return out.getvalue()


def build_parallel(rng: random.Random) -> str:
    _check_aligned()
    en = LANGUAGES[0]
    n_open = len(openings(en))
    n_neutral, n_toxic = len(continuations(en, False)), len(continuations(en, True))
    picks: list[tuple[int, bool, int]] = []
    seen: set[tuple[int, bool, int]] = set()
    n_toxic_pairs = round(PARALLEL_TOXIC_SHARE * PARALLEL_PAIRS)
    flags = [True] * n_toxic_pairs + [False] * (PARALLEL_PAIRS - n_toxic_pairs)
    rng.shuffle(flags)
    for toxic in flags:
        while True:  # distinct sentences: duplicates make retrieval ambiguous
            pick = (rng.randrange(n_open), toxic, rng.randrange(n_toxic if toxic else n_neutral))
            if pick not in seen:
                seen.add(pick)
                picks.append(pick)
                break

    def sentence(lang: Language, pick: tuple[int, bool, int]) -> str:
        opening, toxic, cont = pick
        return f"{openings(lang)[opening]}{lang.sep}{continuations(lang, toxic)[cont]}"

    lines = []
    for lang in LANGUAGES[1:]:
        for k, pick in enumerate(picks):
            record = {
                "id": f"par-{k:04d}",
                "language": lang.code,
                "en": sentence(en, pick),
                "text": sentence(lang, pick),
                "toxic": pick[1],
            }
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def build() -> dict[str, str]:
    """{file name: content} of every file this script writes."""
    rng = random.Random(SEED)
    return {"train.csv": build_jigsaw(rng), "parallel.jsonl": build_parallel(rng)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    files = build()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (args.out / name).is_file()
            or (args.out / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"differs: {name}")
        return 1 if stale else 0
    for name, text in files.items():
        path = args.out / name
        write_text(path, text)  # atomic: an interrupted run never leaves a truncated file
        path.chmod(0o644)  # the temporary file was private; package data must be readable
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        print(f"{path.relative_to(REPO)}  {len(text.encode()):>9,d} bytes  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
