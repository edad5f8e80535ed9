"""Prompt preparation: every source format, language codes, subsampling, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.components.prepare_prompts.prompts import prepare_prompts
from xdetox.components.prepare_prompts.readers import SCALE_PERSPECTIVE, SCALE_RTP_LX
from xdetox.errors import ConfigError, DataError
from xdetox.files import read_jsonl


def write_lines(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records
        ),
        encoding="utf-8",
    )
    return path


def run(source, tmp_path: Path, **kwargs):
    out = tmp_path / "out" / "prompts.jsonl"
    kwargs.setdefault("max_per_language", None)
    kwargs.setdefault("seed", 0)
    counts = prepare_prompts(source, out, **kwargs)
    return counts, read_jsonl(out)


def assert_nothing_written(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ZH-Hans", "zh-hans"), ("zh_hans", "zh-hans"), ("zh-Hans", "zh-hans"), ("EN", "en"),
     (" pt_BR ", "pt-br")],
)  # fmt: skip
def test_normalise_language(raw, expected):
    assert normalise_language(raw) == expected


@pytest.mark.parametrize("bad", ["", "en us", "zh--hans", "-en", 3])
def test_normalise_language_rejects(bad):
    with pytest.raises(ValueError):
        normalise_language(bad)


def test_toy_format_file(tmp_path):
    src = write_lines(
        tmp_path / "toy.jsonl",
        [
            {"prompt_id": "en-1", "language": "en", "prompt": "The weather"},
            {"prompt_id": "fr-1", "language": "FR", "prompt": "Le temps"},
            {"prompt_id": "en-2", "language": "en", "prompt": "My friend", "prompt_toxicity": 0.25},
        ],
    )
    counts, recs = run(src, tmp_path, languages=["fr", "en"])
    assert counts == {"en": 2, "fr": 1}
    # Sorted by language, then original order.
    assert recs == [
        {"prompt_id": "en-1", "language": "en", "prompt": "The weather",
         "source_file": "toy.jsonl"},
        {"prompt_id": "en-2", "language": "en", "prompt": "My friend",
         "source_file": "toy.jsonl", "prompt_toxicity": 0.25},
        {"prompt_id": "fr-1", "language": "fr", "prompt": "Le temps",
         "source_file": "toy.jsonl"},
    ]  # fmt: skip


def test_rtp_lx_folder_languages_ids_and_annotations(tmp_path):
    folder = tmp_path / "rtplx"
    write_lines(
        folder / "RTP_LX_EN.json",
        [
            {"Index": 7, "Locale": "EN", "Prompt": "You are such a", "Completion": "x",
             "PromptAnnotations": {"Toxicity": 3, "Insult": 2}},
            {"Index": 9, "Locale": "EN", "Prompt": "Hello there", "PromptAnnotations": {}},
        ],
    )  # fmt: skip
    write_lines(
        folder / "RTP_LX_ZH-Hans.json",
        [
            {
                "Index": 5,
                "Locale": "ZH-Hans",
                "Prompt": "你好",
                "Annotations": {"Toxicity": [1, 2, 4]},
            }
        ],
    )
    # An older release without the locale in the file name: the language comes from Locale.
    write_lines(
        folder / "extra_release.jsonl",
        [{"Index": 1, "Locale": "DE", "Prompt": "Guten Tag", "Annotations": {"Toxicity": "2"}}],
    )
    (folder / "README.md").write_text("not a source file")
    counts, recs = run(folder, tmp_path, languages=["zh_Hans", "EN", "de"])
    assert counts == {"de": 1, "en": 2, "zh-hans": 1}
    assert [r["prompt_id"] for r in recs] == ["de-1", "en-7", "en-9", "zh-hans-5"]
    by_id = {r["prompt_id"]: r for r in recs}
    assert by_id["en-7"]["prompt"] == "You are such a"
    assert by_id["en-7"]["prompt_toxicity"] == 3.0
    assert by_id["en-7"]["prompt_toxicity_scale"] == SCALE_RTP_LX
    assert "prompt_toxicity" not in by_id["en-9"]  # no annotation: absent, never 0
    assert by_id["zh-hans-5"]["prompt_toxicity"] == pytest.approx(7 / 3)
    assert by_id["zh-hans-5"]["source_file"] == "RTP_LX_ZH-Hans.json"
    assert by_id["de-1"]["prompt_toxicity"] == 2.0


def test_rtp_lx_single_file_language_from_name(tmp_path):
    src = write_lines(tmp_path / "RTP_LX_PT-BR.json", [{"Index": 0, "Prompt": "Olá"}])
    counts, recs = run(src, tmp_path, languages=["pt_br"])
    assert counts == {"pt-br": 1}
    assert recs[0]["prompt_id"] == "pt-br-0"


def rtp_line(text, toxicity, challenging):
    return {
        "filename": "0001.txt", "begin": 0, "end": 10, "challenging": challenging,
        "prompt": {"text": text, "toxicity": toxicity, "profanity": None},
        "continuation": {"text": " whatever", "toxicity": 0.1},
    }  # fmt: skip


def test_realtoxicityprompts(tmp_path):
    src = write_lines(
        tmp_path / "rtp.jsonl",
        [rtp_line("So I said", 0.71, True), rtp_line("Then the", None, False)],
    )
    counts, recs = run(src, tmp_path, languages=["en"])
    assert counts == {"en": 2}
    assert recs[0] == {
        "prompt_id": "rtp-1", "language": "en", "prompt": "So I said", "source_file": "rtp.jsonl",
        "prompt_toxicity": 0.71, "prompt_toxicity_scale": SCALE_PERSPECTIVE, "challenging": True,
    }  # fmt: skip
    assert recs[1]["prompt_id"] == "rtp-2"
    assert "prompt_toxicity" not in recs[1]
    # default_language relabels a translated copy.
    counts, _ = run(src, tmp_path, languages=["fr"], default_language="FR")
    assert counts == {"fr": 2}


def test_csv_with_columns_and_defaults(tmp_path):
    src = tmp_path / "mine.csv"
    src.write_text(
        '\ufeffid,text,language\nq1,"Hello, world",en\nq2,Bonjour,\n,"multi\nline",en\n',
        encoding="utf-8",
    )
    counts, recs = run(src, tmp_path, languages=["en", "fr"], default_language="fr")
    assert counts == {"en": 2, "fr": 1}
    assert [(r["prompt_id"], r["language"], r["prompt"]) for r in recs] == [
        ("q1", "en", "Hello, world"),
        ("mine-5", "en", "multi\nline"),  # no id: file stem + line (the record ends on line 5)
        ("q2", "fr", "Bonjour"),
    ]


def test_plain_jsonl_text_field(tmp_path):
    src = write_lines(tmp_path / "plain.jsonl", [{"text": "one"}, "", {"text": "two", "id": 42}])
    counts, recs = run(src, tmp_path, languages=["sv"], default_language="sv")
    assert counts == {"sv": 2}
    assert [r["prompt_id"] for r in recs] == ["plain-1", "42"]


def test_folder_of_mixed_formats_is_read_in_sorted_order(tmp_path):
    folder = tmp_path / "mixed"
    write_lines(folder / "b.jsonl", [{"prompt": "from b", "language": "en"}])
    (folder / "a.csv").write_text("prompt,language\nfrom a,en\n", encoding="utf-8")
    (folder / ".partial.jsonl").write_text("{broken", encoding="utf-8")  # hidden: skipped
    _, recs = run(folder, tmp_path, languages=["en"])
    assert [r["prompt"] for r in recs] == ["from a", "from b"]
    assert [r["source_file"] for r in recs] == ["a.csv", "b.jsonl"]


def test_subsampling_is_seeded_and_keeps_order(tmp_path):
    src = write_lines(
        tmp_path / "many.jsonl",
        [{"prompt_id": f"en-{i}", "language": "en", "prompt": f"p{i}"} for i in range(10)]
        + [{"prompt_id": f"de-{i}", "language": "de", "prompt": f"d{i}"} for i in range(4)],
    )
    counts, recs = run(src, tmp_path, languages=["en", "de"], max_per_language=3, seed=11)
    assert counts == {"de": 3, "en": 3}
    expected_en = sorted(random.Random(11).sample(range(10), 3))
    expected_de = sorted(random.Random(11).sample(range(4), 3))
    assert [r["prompt_id"] for r in recs] == [f"de-{i}" for i in expected_de] + [
        f"en-{i}" for i in expected_en
    ]
    # Same seed, same choice; a language's sample does not depend on the other languages.
    _, again = run(src, tmp_path, languages=["en"], max_per_language=3, seed=11)
    assert [r["prompt_id"] for r in again] == [f"en-{i}" for i in expected_en]
    # Another seed chooses differently (for this seed pair, checked by hand).
    assert sorted(random.Random(12).sample(range(10), 3)) != expected_en
    _, other = run(src, tmp_path, languages=["en"], max_per_language=3, seed=12)
    assert [r["prompt_id"] for r in other] != [r["prompt_id"] for r in again]
    # Fewer prompts than the cap: all of them.
    counts, _ = run(src, tmp_path, languages=["de"], max_per_language=50, seed=11)
    assert counts == {"de": 4}


def test_missing_language_names_it_and_source(tmp_path):
    src = write_lines(tmp_path / "p.jsonl", [{"prompt_id": "1", "language": "en", "prompt": "x"}])
    with pytest.raises(DataError) as err:
        run(src, tmp_path, languages=["en", "ko", "ja"])
    msg = str(err.value)
    assert str(src) in msg and "ko" in msg and "ja" in msg and "found: en" in msg
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("lines", "bad_line", "words"),
    [
        ([{"prompt": "ok", "language": "en"}, "{not json"], 2, "not valid JSON"),
        ([{"prompt": "ok", "language": "en"}, {"prompt": "  ", "language": "en"}], 2, "empty"),
        ([{"prompt_id": "a", "prompt": "x", "language": "en"}] * 2, 2, "duplicate prompt_id 'a'"),
        ([{"prompt": "ok", "language": "en"}, {"language": "en"}], 2, "'prompt' or 'text'"),
        ([{"prompt": "ok"}], 1, "no 'language'"),
        (
            [
                {"Index": 1, "Prompt": "ok", "Locale": "EN"},
                {"Index": 2, "Prompt": "", "Locale": "EN"},
            ],
            2,
            "empty",
        ),
        ([{"Index": 1, "Prompt": "ok", "Locale": "EN"}, {"Prompt": "x"}], 2, "'Index'"),
        ([rtp_line("ok", 0.1, False), {"prompt": "flat"}], 2, "'prompt' to be an object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, lines, bad_line, words):
    src = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        run(src, tmp_path, languages=["en"])
    assert f"{src}:{bad_line}:" in str(err.value)
    assert words in str(err.value)
    assert_nothing_written(tmp_path)


def test_duplicate_across_files_names_both(tmp_path):
    folder = tmp_path / "dups"
    write_lines(folder / "a.jsonl", [{"prompt_id": "x", "language": "en", "prompt": "p"}])
    write_lines(
        folder / "b.jsonl",
        [
            {"prompt_id": "y", "language": "en", "prompt": "p"},
            {"prompt_id": "x", "language": "en", "prompt": "q"},
        ],
    )
    with pytest.raises(DataError) as err:
        run(folder, tmp_path, languages=["en"])
    assert f"{folder / 'b.jsonl'}:2:" in str(err.value)
    assert f"{folder / 'a.jsonl'}:1" in str(err.value)
    assert_nothing_written(tmp_path)


def test_bad_csv_rows(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("id,prompt\n1,fine\n2,\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{src}:3: empty prompt"):
        run(src, tmp_path, languages=["en"], default_language="en")
    src.write_text("id,body\n1,fine\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{src}:1: no 'prompt' or 'text' column"):
        run(src, tmp_path, languages=["en"], default_language="en")
    assert_nothing_written(tmp_path)


def test_failure_keeps_previous_output(tmp_path):
    good = write_lines(tmp_path / "good.jsonl", [{"prompt": "ok", "language": "en"}])
    run(good, tmp_path, languages=["en"])
    before = (tmp_path / "out" / "prompts.jsonl").read_text()
    bad = write_lines(tmp_path / "bad.jsonl", [{"prompt": "", "language": "en"}])
    with pytest.raises(DataError):
        run(bad, tmp_path, languages=["en"])
    assert (tmp_path / "out" / "prompts.jsonl").read_text() == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["prompts.jsonl"]


def test_source_errors(tmp_path):
    with pytest.raises(DataError, match="prompt source not found"):
        run(tmp_path / "nope", tmp_path, languages=["en"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.json/\.jsonl/\.csv files"):
        run(tmp_path / "empty", tmp_path, languages=["en"])
    with pytest.raises(ConfigError, match=r"data\.languages"):
        run(tmp_path / "empty", tmp_path, languages=["en us"])
    assert_nothing_written(tmp_path)


def test_toy_source_uses_the_toy_package(tmp_path):
    from xdetox.files import read_jsonl
    from xdetox.toy import toy_prompts_path

    shipped = [r for r in read_jsonl(toy_prompts_path()) if r["language"] == "en"]
    counts, recs = run("toy", tmp_path, languages=["en"])
    assert counts == {"en": len(shipped)} and len(shipped) > 0
    assert [r["prompt"] for r in recs] == [r["prompt"] for r in shipped]
    assert recs[0]["source_file"] == toy_prompts_path().name


def test_no_language_list_keeps_every_language(tmp_path):
    src = write_lines(
        tmp_path / "mixed.jsonl",
        [{"prompt": "a", "language": "fr"}, {"prompt": "b", "language": "EN"}],
    )
    counts, rows = run(src, tmp_path, languages=None)
    assert counts == {"en": 1, "fr": 1}
    assert [r["language"] for r in rows] == ["en", "fr"]
