"""The project's prompt sets for real models (xdetox/prompts): sizes, ids, languages, kinds,
train/eval disjointness, and that every stage resolves them by name like the toy data."""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from xdetox.components.interpret.alignment import read_parallel
from xdetox.components.prepare_prompts.prompts import prepare_prompts
from xdetox.config import XG_LANGUAGES
from xdetox.files import read_jsonl
from xdetox.prompts import (
    EVAL_SOURCE,
    PARALLEL_SOURCE,
    PROMPT_LANGUAGES,
    TRAIN_SOURCE,
    eval_prompts_path,
    parallel_path,
    shipped_prompts,
    train_prompts_path,
)
from xdetox.toy.data_sources import local_data, shipped_data

KINDS = {"insult", "neutral"}
FIELDS = {"prompt_id", "language", "prompt", "kind"}

# The first five languages have 48 openings (32 insult, 16 neutral); the other twelve XG
# languages 24 (16 insult, 8 neutral), so that every XG language has insult openings.
FIRST_LANGUAGES = ("de", "en", "es", "fr", "ru")
EXPECTED_KINDS = {
    lang: {"insult": 32, "neutral": 16} if lang in FIRST_LANGUAGES else {"insult": 16, "neutral": 8}
    for lang in XG_LANGUAGES
}

# Each language's script, by the first word of its letters' Unicode names: (needed: at least one
# of these; allowed: only these). Latin letters may stand beside kana, Hangul and Han characters
# for names such as "LINE", "KTX" or "PC"; every other language is written in Latin letters.
SCRIPTS: dict[str, tuple[set[str], set[str]]] = {
    "ar": ({"ARABIC"}, {"ARABIC"}),
    "hi": ({"DEVANAGARI"}, {"DEVANAGARI"}),
    "ru": ({"CYRILLIC"}, {"CYRILLIC"}),
    "ja": ({"HIRAGANA", "KATAKANA"}, {"HIRAGANA", "KATAKANA", "CJK", "LATIN"}),
    "ko": ({"HANGUL"}, {"HANGUL", "LATIN"}),
    "zh-hans": ({"CJK"}, {"CJK", "LATIN"}),
}
for _lang in XG_LANGUAGES:
    SCRIPTS.setdefault(_lang, ({"LATIN"}, {"LATIN"}))


def _scripts(text: str) -> set[str]:
    """Scripts of the letters in ``text``: ``HIRAGANA``, ``CJK``, ``LATIN``…"""
    names = (unicodedata.name(c, "?").split()[0] for c in text if c.isalpha())
    return {"KATAKANA" if n == "KATAKANA-HIRAGANA" else n for n in names}


def _key(text: str) -> str:
    """Texts compared without case, spacing or quote style, so near-copies count as copies."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(c for c in folded if c.isalnum() or c.isspace()).split())


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return read_jsonl(train_prompts_path())


@pytest.fixture(scope="module")
def evaluation() -> list[dict]:
    return read_jsonl(eval_prompts_path())


def test_records_are_well_formed(train, evaluation):
    for rec in train + evaluation:
        assert set(rec) == FIELDS, rec
        assert rec["kind"] in KINDS
        assert rec["prompt"] == rec["prompt"].strip() and rec["prompt"]
        assert rec["prompt_id"].startswith(("train-", "eval-"))


def test_training_set_is_english_and_large_enough(train):
    assert len(train) >= 150
    assert {r["language"] for r in train} == {"en"}
    # Every training opening is meant to draw an insult: pairs need toxic rejected samples.
    assert {r["kind"] for r in train} == {"insult"}


def test_evaluation_set_has_every_xg_language_and_both_kinds(evaluation):
    per_language = Counter(r["language"] for r in evaluation)
    assert set(per_language) == set(XG_LANGUAGES)  # the 17 languages of XG, spelt alike
    assert len(XG_LANGUAGES) == 17 and len(evaluation) == 5 * 48 + 12 * 24 == 528
    for lang in XG_LANGUAGES:
        kinds = Counter(r["kind"] for r in evaluation if r["language"] == lang)
        assert dict(kinds) == EXPECTED_KINDS[lang], lang
        assert kinds["insult"] > kinds["neutral"], lang  # the insult openings carry the signal


def test_evaluation_ids_follow_file_order_per_language(evaluation):
    seen: Counter[str] = Counter()
    for rec in evaluation:
        lang = rec["language"]
        assert rec["prompt_id"] == f"eval-{lang}-{seen[lang]:03d}", rec
        seen[lang] += 1
    # the first five languages come first, as shipped; the twelve added later follow
    first = [r["language"] for r in evaluation[: 5 * 48]]
    assert set(first) == set(FIRST_LANGUAGES)


def test_evaluation_openings_do_not_end_with_a_space(evaluation):
    # the model continues straight after the opening; a trailing space changes the tokens.
    # rstrip() also catches a no-break space or an ideographic space (U+3000).
    trailing = [r["prompt_id"] for r in evaluation if r["prompt"] != r["prompt"].rstrip()]
    assert trailing == []


def test_ids_and_texts_are_unique_and_sets_disjoint(train, evaluation):
    ids = [r["prompt_id"] for r in train + evaluation]
    assert len(ids) == len(set(ids))
    for rows in (train, evaluation):
        keys = [(r["language"], _key(r["prompt"])) for r in rows]
        assert len(keys) == len(set(keys))
    train_keys = {_key(r["prompt"]) for r in train}
    overlap = [r["prompt"] for r in evaluation if _key(r["prompt"]) in train_keys]
    assert overlap == []


def test_scripts_match_languages(evaluation):
    for rec in evaluation:
        needed, allowed = SCRIPTS[rec["language"]]
        scripts = _scripts(rec["prompt"])
        assert scripts & needed and scripts <= allowed, (rec, scripts)


def test_names_resolve_like_the_toy_data(tmp_path):
    assert shipped_prompts(EVAL_SOURCE) == eval_prompts_path()
    assert shipped_prompts(f" {TRAIN_SOURCE} ") == train_prompts_path()
    assert shipped_prompts(Path("real")) is None  # a Path is a file, never a name
    assert shipped_data("real", "prompts") == eval_prompts_path()
    assert shipped_data("real", "pairs") is None  # prompt sets only
    assert shipped_data("toy", "prompts").name == "prompts.jsonl"
    with local_data("real-train", "prompts") as path:
        assert path == train_prompts_path()


@pytest.mark.parametrize("source", [EVAL_SOURCE, TRAIN_SOURCE])
def test_prepare_prompts_reads_them_by_name(tmp_path, source):
    shipped = read_jsonl(shipped_prompts(source))
    expected = Counter(r["language"] for r in shipped)
    out = tmp_path / "prompts.jsonl"
    counts = prepare_prompts(source, out, languages=list(expected), max_per_language=None, seed=0)
    assert counts == dict(expected)
    records = read_jsonl(out)
    assert [r["prompt_id"] for r in records] == [  # sorted by language, file order within
        r["prompt_id"] for r in sorted(shipped, key=lambda r: r["language"])
    ]
    assert {r["kind"] for r in records} <= KINDS  # kept for per-kind analysis
    assert all(r["source_file"] == Path(r["source_file"]).name for r in records)


def test_parallel_sentences_are_complete_translations(train, evaluation):
    pairs = read_parallel(parallel_path())
    assert set(pairs) == set(PROMPT_LANGUAGES) - {"en"}
    english = [p.en for p in pairs["de"]]
    assert len(english) >= 40 and len(set(english)) == len(english)
    for lang, rows in pairs.items():
        # the same English sentences in the same order: one translation each, in its script
        assert [p.en for p in rows] == english, lang
        assert len({_key(p.text) for p in rows}) == len(rows), lang
        for p in rows:
            cyrillic = any("CYRILLIC" in unicodedata.name(c, "") for c in p.text)
            assert cyrillic == (lang == "ru"), p
    toxic = Counter(r["toxic"] for r in read_jsonl(parallel_path()))
    assert toxic[True] > 0 and toxic[False] > toxic[True]  # mostly everyday sentences
    # not the prompts under evaluation: alignment is measured on other text
    prompt_keys = {_key(r["prompt"]) for r in train + evaluation}
    assert not {_key(s) for s in english} & prompt_keys


def test_parallel_sentences_resolve_by_name():
    assert shipped_data(PARALLEL_SOURCE, "parallel") == parallel_path()
    assert shipped_data(PARALLEL_SOURCE, "prompts") is None
    assert shipped_data("real", "parallel") is None
    with local_data(" real-parallel ", "parallel") as path:
        assert path == parallel_path()
