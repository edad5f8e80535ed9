"""The offline lexicon scorer and score_generations: hand-computed values and bad input."""

from __future__ import annotations

import json

import pytest
from generation_records import generation_record as _generation

from xdetox.components.score.lexicon import (
    Lexicon,
    load_lexicon,
    load_lexicons,
    noisy_or,
    resolve_language,
    score_text,
    tokenize,
)
from xdetox.components.score.lexicon_scorer import LexiconScorer
from xdetox.components.score.score_file import score_generations
from xdetox.components.score.scorers import get_scorer
from xdetox.config import ScoringConfig
from xdetox.errors import ConfigError, DataError
from xdetox.records import ATTRIBUTES

TOY_TSV = """\
# a comment, then a blank line

foo\tINSULT\t0.5
bar\tPROFANITY,SEVERE_TOXICITY=0.2\t0.4
big bad wolf\tTHREAT\t0.9
bad\tINSULT\t0.3
idiot*\tINSULT\t0.6
"""


@pytest.fixture
def toy_lexicon(tmp_path) -> Lexicon:
    path = tmp_path / "xx.tsv"
    path.write_text(TOY_TSV, encoding="utf-8")
    return load_lexicon(path)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Lexicon]:
    return load_lexicons()


def test_noisy_or_by_hand():
    assert noisy_or([]) == 0.0
    assert noisy_or([0.5]) == pytest.approx(0.5)
    assert noisy_or([0.5, 0.4, 0.5]) == pytest.approx(1 - 0.5 * 0.6 * 0.5)


def test_noisy_or_per_attribute_with_own_weights(toy_lexicon):
    scores = score_text(toy_lexicon, "Foo bar foo")
    # TOXICITY counts every match (repeats too): 1 - (1-.5)(1-.4)(1-.5) = 0.85.
    assert scores["TOXICITY"] == pytest.approx(0.85)
    assert scores["INSULT"] == pytest.approx(1 - 0.5 * 0.5)  # foo twice
    assert scores["PROFANITY"] == pytest.approx(0.4)
    assert scores["SEVERE_TOXICITY"] == pytest.approx(0.2)  # bar's own weight for it
    assert scores["THREAT"] == 0.0
    assert scores["IDENTITY_ATTACK"] == 0.0
    assert set(scores) == set(ATTRIBUTES)


def test_longest_term_wins_and_is_counted_once(toy_lexicon):
    assert toy_lexicon.matches("the big bad wolf came") == ["big bad wolf"]
    scores = score_text(toy_lexicon, "the big bad wolf came")
    assert scores["TOXICITY"] == pytest.approx(0.9)
    assert scores["INSULT"] == 0.0  # "bad" inside the longer term does not count again
    assert toy_lexicon.matches("a bad wolf") == ["bad"]


def test_prefix_terms_match_word_starts_only(toy_lexicon):
    assert toy_lexicon.matches("Idiots! idiotic") == ["idiot*", "idiot*"]
    assert toy_lexicon.matches("myidiot foobar") == []  # not inside words, no partial words


def test_no_match_and_empty_text_are_real_zeros(toy_lexicon):
    assert score_text(toy_lexicon, "") == dict.fromkeys(ATTRIBUTES, 0.0)
    assert score_text(toy_lexicon, "a calm sentence") == dict.fromkeys(ATTRIBUTES, 0.0)


def test_case_and_accent_insensitive(shipped):
    en = shipped["en"]
    assert en.matches("IDIOT") == en.matches("Idiót") == en.matches("idiot") == ["idiot*"]
    assert tokenize("Straße ÉTÉ") == ["strasse", "ete"]
    de = shipped["de"]
    assert de.matches("SCHEISSE") == de.matches("Scheiße") == ["scheiß*"]


def test_cyrillic(shipped):
    ru = shipped["ru"]
    assert ru.matches("Он ИДИОТ") == ["идиот*"]
    assert ru.matches("чёртов") == ru.matches("чертов") == ["чёрт*"]  # ё written as е
    assert score_text(ru, "Он идиот")["TOXICITY"] == pytest.approx(0.6)
    assert ru.matches("он убирает гараж") == []  # 'убь*' threats do not hit other verbs


def test_chinese_substrings_longest_first(shipped):
    zh = shipped["zh-hans"]
    assert zh.matches("他是个白痴啊") == ["白痴"]
    assert zh.matches("他是个傻瓜") == ["傻瓜"]  # not also "傻"
    assert score_text(zh, "你这个傻瓜")["TOXICITY"] == pytest.approx(0.55)
    assert zh.matches("他找到了新工作") == []


def test_language_resolution():
    available = ["en", "de", "zh-hans"]
    assert resolve_language("en", available) == "en"
    assert resolve_language("en-US", available) == "en"
    assert resolve_language("DE_de", available) == "de"
    assert resolve_language("zh-Hans", available) == "zh-hans"
    assert resolve_language("zh-CN", available) == "zh-hans"
    assert resolve_language("ar", available) is None


def test_unknown_language_is_none_with_reason_not_zero():
    scorer = LexiconScorer()
    results = scorer.score_items(["You idiot", "You idiot"], ["en", "sw"])
    assert results[0].scores["TOXICITY"] == pytest.approx(0.6)
    assert results[0].errors == {}
    assert results[1].scores == dict.fromkeys(ATTRIBUTES)  # None, not 0
    assert set(results[1].errors) == set(ATTRIBUTES)
    assert "no lexicon" in results[1].errors["TOXICITY"] and "sw" in results[1].errors["TOXICITY"]
    assert scorer.score_batch(["You idiot"], ["sw"]) == [dict.fromkeys(ATTRIBUTES)]


def test_get_scorer_honours_attributes_and_describes_itself():
    scorer = get_scorer(ScoringConfig(attributes=["INSULT", "TOXICITY"]))
    assert scorer.attributes == ("INSULT", "TOXICITY")
    assert scorer.id == "offline-lexicon-v1"
    assert "not a trained classifier" in scorer.name and "en" in scorer.name
    assert scorer.score_batch(["stupid"], ["en"]) == [{"INSULT": 0.55, "TOXICITY": 0.55}]


def test_get_scorer_rejects_unknown_attribute():
    with pytest.raises(ConfigError, match=r"scoring\.attributes\.1: unknown attribute 'RUDE'"):
        get_scorer(ScoringConfig(attributes=["TOXICITY", "RUDE"]))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("foo\tINSULT", "expected 3 tab-separated columns"),
        ("foo\tRUDENESS\t0.5", "unknown attribute 'RUDENESS'"),
        ("foo\tINSULT\t1.5", "outside (0, 1]"),
        ("foo\tINSULT\tmuch", "not a number"),
        ("fo*o\tINSULT\t0.5", "'*' only at the end"),
    ],
)
def test_malformed_lexicon_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "en.tsv"
    path.write_text(f"# header\nok\t-\t0.5\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_lexicon(path)
    assert f"{path}:3:" in str(info.value)
    assert message in str(info.value)


def test_duplicate_lexicon_term_is_an_error(tmp_path):
    path = tmp_path / "en.tsv"
    path.write_text("Idiot\t-\t0.5\nidiot\tINSULT\t0.6\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"en\.tsv:2: term 'idiot' already on line 1"):
        load_lexicon(path)


def test_shipped_lexicons_are_substantial(shipped):
    assert {"en", "de", "es", "fr", "ru", "zh-hans"} <= set(shipped)
    for language, lexicon in shipped.items():
        assert len(lexicon.terms) >= 30, language
        kinds = {name for term in lexicon.terms for name in term.weights}
        assert {"INSULT", "PROFANITY", "THREAT", "IDENTITY_ATTACK"} <= kinds, language




def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def test_score_generations_keeps_order_and_fields(tmp_path):
    rows = [
        _generation(0, " is a stupid idiot."),
        _generation(1, " will water the plants."),
        _generation(2, " ist ein Idiot.", "de"),
        _generation(3, " هو أحمق", "ar"),
        _generation(4, ""),
    ]
    src, out = tmp_path / "gen.jsonl", tmp_path / "scores" / "scores.jsonl"
    _write(src, rows)
    summary = score_generations(src, out, ScoringConfig(), progress=False)
    scored = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [s["prompt_id"] for s in scored] == [r["prompt_id"] for r in rows]
    for row, record in zip(rows, scored, strict=True):
        assert {k: record[k] for k in row} == row  # every generation field kept as it was
        assert record["scorer"] == "offline-lexicon-v1"
        assert set(record["scores"]) == set(ATTRIBUTES)
    assert scored[0]["scores"]["TOXICITY"] == pytest.approx(1 - 0.45 * 0.4)  # stupid, idiot
    assert scored[1]["scores"]["TOXICITY"] == 0.0
    assert scored[2]["scores"]["TOXICITY"] == pytest.approx(0.6)
    assert scored[3]["scores"]["TOXICITY"] is None
    assert "no lexicon" in scored[3]["score_errors"]["TOXICITY"]
    assert scored[4]["scores"]["TOXICITY"] == 0.0
    assert all("score_errors" not in s for i, s in enumerate(scored) if i != 3)
    assert summary["n"] == 5 and summary["n_missing"] == 1
    assert summary["missing_by_language"] == {"ar": 1}
    assert summary["scorer"] == "offline-lexicon-v1"
    assert "word list" in summary["scorer_name"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"model": "base"}', "missing field(s) 'prompt_id'"),
        ("{not json", "not valid JSON"),
        (json.dumps({**_generation(1, "x"), "text": None}), "field 'text' must be a string"),
    ],
)
def test_score_generations_bad_line_names_file_and_line_and_writes_nothing(
    tmp_path, bad_line, message
):
    src, out = tmp_path / "gen.jsonl", tmp_path / "out" / "scores.jsonl"
    src.write_text(
        json.dumps(_generation(0, "fine"))
        + "\n"
        + bad_line
        + "\n"
        + json.dumps(_generation(2, "x")),
        encoding="utf-8",
    )
    with pytest.raises(DataError) as info:
        score_generations(src, out, ScoringConfig(), progress=False)
    assert f"{src}:2:" in str(info.value)
    assert message in str(info.value)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# ------------------------------------------------------------------------------ scorer choice
def test_scoring_section_survives_kfp_struct_parameters():
    """Struct parameters hold no nulls and turn ints into floats, nested sections included."""
    from xdetox.config import to_params, validate_section
    from xdetox.config.scoring import ClassifierConfig

    def floats(value):
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    for config in (
        ScoringConfig(),
        ScoringConfig(
            scorer="perspective",
            qps=5,
            max_retries=3,
            api_batch_size=5,
            discovery_url="http://127.0.0.1:1/d",
            cache_dir="/cache",
        ),
        ScoringConfig(
            scorer="classifier",
            attributes=["TOXICITY"],
            classifier=ClassifierConfig(
                model="m", label_map={"obscene": "PROFANITY"}, batch_size=8, languages=["en"]
            ),
        ),
    ):
        params = floats(to_params(config))
        assert None not in params.values()
        assert validate_section(ScoringConfig, params, "scoring") == config


def test_get_scorer_kinds_build_lazily(tmp_path, monkeypatch):
    from xdetox.config.scoring import ClassifierConfig

    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    perspective = get_scorer(ScoringConfig(scorer="perspective", cache_dir=str(tmp_path / "c")))
    assert perspective.id == "perspective-v1alpha1" and perspective.attributes == ATTRIBUTES
    classifier = get_scorer(
        ScoringConfig(scorer="classifier", classifier=ClassifierConfig(model="/nowhere/model"))
    )
    assert classifier.id == "classifier-model" and "/nowhere/model" in classifier.name
    assert not (tmp_path / "c").exists()  # nothing opened, nothing contacted, nothing loaded
    with pytest.raises(Exception, match="scorer"):
        ScoringConfig(scorer="vibes")
