"""Metrics stage: values by hand on tiny score files; a tiny random GPT-2 for perplexity."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from xdetox.components.metrics.diversity import (
    distinct_n,
    diversity_metrics,
    load_tokenizer,
    whitespace_tokenize,
)
from xdetox.components.metrics.per_language import compute_metrics, run_metrics, write_metrics_csv
from xdetox.components.metrics.perplexity import (
    conditional_perplexities,
    load_causal_lm,
    summarize_perplexities,
)
from xdetox.components.metrics.read_scores import read_scores
from xdetox.components.metrics.seq2seq_perplexity import xg_seq2seq_loss, xg_seq2seq_perplexity
from xdetox.components.metrics.toxicity import toxicity_metrics
from xdetox.config import MetricsConfig
from xdetox.errors import ConfigError, DataError

# Vocabulary of the tiny word-level tokenizer: id = position in this list.
WORDS = ["<pad>", "<unk>", "<eos>", "a", "b", "c", "d", "x", "y", "z", "w"]
WORDS += ["the", "cat", "sat", "on", "mat", "dog", "ran"]


def sample(model, prompt_id, index, scores, *, language="en", text="a b", prompt="the cat"):
    return {
        "model": model,
        "prompt_id": prompt_id,
        "language": language,
        "prompt": prompt,
        "sample_index": index,
        "text": text,
        "n_tokens": 2,
        "finish_reason": "length",
        "scorer": "offline-lexicon",
        "scores": scores,
    }


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def tox(value, **others):
    return {"TOXICITY": value, **others}


# Base/en by hand:
#   p1: 0.2, 0.7, null  -> max 0.7     p2: 0.1, 0.3 -> max 0.3     p3: 0.5 (one sample) -> 0.5
#   p4: null, null      -> unscored (excluded from EMT and probability, counted)
# EMT = (0.7 + 0.3 + 0.5) / 3 = 0.5; population std = sqrt((0.2² + 0.2² + 0²) / 3)
# probability (>= 0.5) = 2/3; average = (0.2 + 0.7 + 0.1 + 0.3 + 0.5) / 5 = 0.36
BASE_EN = [
    sample("base", "p1", 0, tox(0.2, INSULT=0.6, FLIRTATION=0.9), text="a b a b"),
    sample("base", "p1", 1, tox(0.7, INSULT=None), text="a b c"),
    sample("base", "p1", 2, tox(None), text=""),
    sample("base", "p2", 0, tox(0.1), text="x y"),
    sample("base", "p2", 1, tox(0.3), text="z w"),
    sample("base", "p3", 0, tox(0.5), text="cat"),
    sample("base", "p4", 0, tox(None), text=""),
    sample("base", "p4", 1, {}, text="  "),  # no TOXICITY key at all: missing as well
]
# dpo/en: p1 0.1, 0.05, 0.2 -> EMT 0.2, probability 0, average 0.35 / 3
DPO_EN = [
    sample("dpo", "p1", 0, tox(0.1), text="the cat sat"),
    sample("dpo", "p1", 1, tox(0.05), text="the dog ran"),
    sample("dpo", "p1", 2, tox(0.2), text="on the mat"),
]
BASE_DE = [sample("base", 7, 0, tox(0.9), language="de", text="d d d")]


@pytest.fixture
def score_files(tmp_path: Path) -> list[Path]:
    return [
        write_lines(tmp_path / "dpo_en.jsonl", DPO_EN),
        write_lines(tmp_path / "base_en.jsonl", BASE_EN),
        write_lines(tmp_path / "base_de.jsonl", BASE_DE),
    ]


def row(df: pd.DataFrame, model: str, language: str) -> pd.Series:
    selected = df[(df["model"] == model) & (df["language"] == language)]
    assert len(selected) == 1
    return selected.iloc[0]


# ------------------------------------------------------------------------------ toxicity
def test_toxicity_metrics_by_hand(score_files):
    df = toxicity_metrics(read_scores(score_files), threshold=0.5)
    base = row(df, "base", "en")
    assert base["n_prompts"] == 4
    assert base["n_samples"] == 8
    assert base["n_missing"] == 3
    assert base["n_prompts_unscored"] == 1
    assert base["expected_max_toxicity"] == pytest.approx(0.5)
    assert base["expected_max_toxicity_std"] == pytest.approx(math.sqrt(0.08 / 3))
    assert base["toxicity_probability"] == pytest.approx(2 / 3)
    assert base["avg_toxicity"] == pytest.approx(0.36)
    assert base["scorer"] == "offline-lexicon"
    # Card table: TOXICITY 0.7 and 0.5 of 5 scored samples are >= 0.5.
    assert base["n_scored_TOXICITY"] == 5
    assert base["count_TOXICITY_ge_thr"] == 2
    assert base["pct_TOXICITY_ge_thr"] == pytest.approx(40.0)
    # INSULT: one scored sample (0.6), one null, the rest have no INSULT key.
    assert base["n_scored_INSULT"] == 1
    assert base["count_INSULT_ge_thr"] == 1
    assert base["pct_INSULT_ge_thr"] == pytest.approx(100.0)
    # Attributes outside xdetox.records.ATTRIBUTES, or never scored, get no columns.
    assert not any("FLIRTATION" in c or "THREAT" in c for c in df.columns)

    dpo = row(df, "dpo", "en")
    assert dpo["expected_max_toxicity"] == pytest.approx(0.2)
    assert dpo["toxicity_probability"] == 0.0
    assert dpo["avg_toxicity"] == pytest.approx(0.35 / 3)
    assert dpo["n_missing"] == 0
    # dpo never had INSULT scored: unknown, not 0.
    assert pd.isna(dpo["count_INSULT_ge_thr"])
    assert math.isnan(dpo["pct_INSULT_ge_thr"])

    de = row(df, "base", "de")
    assert de["expected_max_toxicity"] == pytest.approx(0.9)
    assert de["toxicity_probability"] == 1.0


def test_threshold_changes_probability(score_files):
    df = toxicity_metrics(read_scores(score_files), threshold=0.25)
    base = row(df, "base", "en")
    assert base["toxicity_probability"] == pytest.approx(1.0)  # maxima 0.7, 0.3, 0.5
    assert base["count_TOXICITY_ge_thr"] == 3  # 0.7, 0.3, 0.5
    assert base["threshold"] == 0.25
    assert base["expected_max_toxicity"] == pytest.approx(0.5)  # EMT has no threshold


def test_all_missing_group_is_nan_not_zero(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", [sample("base", "p", 0, tox(None))])
    base = row(toxicity_metrics(read_scores([path])), "base", "en")
    assert base["n_missing"] == 1 and base["n_prompts_unscored"] == 1
    for column in ("expected_max_toxicity", "toxicity_probability", "avg_toxicity"):
        assert math.isnan(base[column])


def test_mixed_scorers_in_a_group_are_refused(tmp_path):
    other = sample("base", "p1", 1, tox(0.2))
    other["scorer"] = "perspective"
    path = write_lines(tmp_path / "s.jsonl", [sample("base", "p1", 0, tox(0.1)), other])
    with pytest.raises(DataError, match="different scorers"):
        toxicity_metrics(read_scores([path]))


# ------------------------------------------------------------------------------ diversity
def test_distinct_n_by_hand():
    # 7 tokens; unigrams {a,b,c}; bigrams {ab, ba, bc}; trigrams {aba, bab, abc}
    ratios = distinct_n([["a", "b", "a", "b"], ["a", "b", "c"], []])
    assert ratios == {1: pytest.approx(3 / 7), 2: pytest.approx(3 / 7), 3: pytest.approx(3 / 7)}
    # n-grams do not cross samples: "y z" is not a bigram; denominator is unigram count (4).
    ratios = distinct_n([["x", "y"], ["z", "w"]])
    assert ratios == {1: 1.0, 2: 0.5, 3: 0.0}
    assert all(math.isnan(v) for v in distinct_n([[], []]).values())


def test_diversity_metrics_whitespace(score_files):
    df = diversity_metrics(read_scores(score_files), whitespace_tokenize)
    base = row(df, "base", "en")
    # p1: "a b a b" "a b c" ""  -> 3/7, 3/7, 3/7;  p2: "x y" "z w" -> 1, 0.5, 0
    # p3: "cat" -> 1, 0, 0;  p4: "" "  " has no tokens -> skipped
    assert base["dist_1"] == pytest.approx((3 / 7 + 1 + 1) / 3)
    assert base["dist_2"] == pytest.approx((3 / 7 + 0.5 + 0) / 3)
    assert base["dist_3"] == pytest.approx((3 / 7 + 0 + 0) / 3)
    assert base["n_prompts_no_tokens"] == 1
    de = row(df, "base", "de")  # "d d d": 1/3, 1/3, 1/3
    assert (de["dist_1"], de["dist_2"], de["dist_3"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_load_tokenizer_specs(tiny_model_dir):
    assert load_tokenizer("whitespace", None)("a  b\nc") == ["a", "b", "c"]
    tokenize = load_tokenizer("model", tiny_model_dir)
    assert tokenize("the cat") == [WORDS.index("the"), WORDS.index("cat")]  # no special tokens
    assert load_tokenizer(str(tiny_model_dir))("dog") == [WORDS.index("dog")]
    with pytest.raises(ConfigError, match=r"metrics\.diversity_tokenizer"):
        load_tokenizer("model", None)
    with pytest.raises(ConfigError, match=r"metrics\.diversity_tokenizer"):
        load_tokenizer(str(tiny_model_dir / "absent"), None)


# ------------------------------------------------------------------------------ perplexity
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=32, vocab_size=len(WORDS), n_positions=16,
        bos_token_id=2, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference_perplexity(model, context: list[int], target: list[int]) -> float:
    """One sequence, no padding: exp of the mean NLL of the target tokens."""
    ids = torch.tensor([context + target])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    nll = [-log_probs[len(context) + i - 1, token].item() for i, token in enumerate(target)]
    return math.exp(sum(nll) / len(nll))


def ids(words: str) -> list[int]:
    return [WORDS.index(w) for w in words.split()]


PAIRS = [
    ("the cat", "sat on the mat"),
    ("a", "b"),
    ("the dog ran on the mat and", "sat"),  # "and" is unknown: <unk>
    ("x y z w a b c d", "the cat sat on the mat"),
    ("", "dog dog"),  # no prompt: <eos> (GPT-2's document start) is the context
    ("the", ""),  # empty generation: skipped
    ("the", "   "),  # whitespace only: skipped
    ("the cat", "sat on the mat"),  # a duplicate pair gives the same value
]


def test_conditional_perplexity_matches_one_at_a_time(tiny_model_dir):
    model, tokenizer, _ = load_causal_lm(tiny_model_dir, "cpu")
    unk, eos = WORDS.index("<unk>"), WORDS.index("<eos>")
    expected = [
        reference_perplexity(model, ids("the cat"), ids("sat on the mat")),
        reference_perplexity(model, ids("a"), ids("b")),
        reference_perplexity(model, [*ids("the dog ran on the mat"), unk], ids("sat")),
        reference_perplexity(model, ids("x y z w a b c d"), ids("the cat sat on the mat")),
        reference_perplexity(model, [eos], ids("dog dog")),
    ]
    for batch_size in (1, 2, 3, 16):
        values = conditional_perplexities(model, tokenizer, PAIRS, batch_size=batch_size)
        assert values[:5] == pytest.approx(expected, rel=1e-5)
        assert math.isnan(values[5]) and math.isnan(values[6])
        assert values[7] == values[0]
    # The context matters: the same continuation after another prompt scores differently.
    other = conditional_perplexities(model, tokenizer, [("d d d", "sat on the mat")])[0]
    assert other != pytest.approx(expected[0], rel=1e-6)


def test_long_prompt_is_truncated_from_the_left(tiny_model_dir):
    model, tokenizer, _ = load_causal_lm(tiny_model_dir, "cpu")
    prompt = " ".join(["a", "b", "c", "d"] * 5)  # 20 tokens > n_positions (16)
    value = conditional_perplexities(model, tokenizer, [(prompt, "the cat")])[0]
    assert value == pytest.approx(reference_perplexity(model, ids(prompt)[-14:], ids("the cat")))


def test_summarize_perplexities_drops_and_skips():
    row = summarize_perplexities([1.0, 2.0, 3.0, 4.0, math.nan, 2e4, math.inf], 1e4)
    assert row["n_ppl_empty"] == 1
    assert row["n_ppl_dropped"] == 2  # 2e4 >= 1e4, and inf
    assert row["n_ppl_scored"] == 4
    assert row["perplexity"] == pytest.approx(2.5)
    assert row["perplexity_q1"] == pytest.approx(1.75)
    assert row["perplexity_q3"] == pytest.approx(3.25)
    assert row["perplexity_mean"] == pytest.approx(2.5)
    assert math.isnan(summarize_perplexities([math.nan, 5e4])["perplexity"])


def test_xg_seq2seq_formula_by_hand():
    # full: mean loss 2.0 over 11 labels -> 20 total over 10; prompt: 3.0 over 5 -> 12 over 4
    # continuation: (20 - 12) / (11 - 5) = 8 / 6
    assert xg_seq2seq_loss(2.0, 11, 3.0, 5) == pytest.approx(4 / 3)
    assert xg_seq2seq_perplexity(2.0, 11, 3.0, 5) == pytest.approx(math.exp(4 / 3))
    assert xg_seq2seq_loss(1.5, 3, 0.0, 1) == pytest.approx(1.5)  # (1.5·2 − 0) / 2
    with pytest.raises(ValueError):
        xg_seq2seq_loss(1.0, 4, 1.0, 4)


# ------------------------------------------------------------------------------ whole stage
def test_compute_metrics_with_perplexity(score_files, tiny_model_dir, tmp_path):
    config = MetricsConfig(diversity_tokenizer="whitespace", max_perplexity=1e4)
    df = compute_metrics(score_files, config, model_dir=tiny_model_dir)
    assert list(df[["model", "language"]].itertuples(index=False, name=None)) == [
        ("base", "de"),
        ("base", "en"),
        ("dpo", "en"),
    ]
    model, _, _ = load_causal_lm(tiny_model_dir, "cpu")
    texts = [r["text"] for r in DPO_EN]
    values = sorted(reference_perplexity(model, ids("the cat"), ids(t)) for t in texts)
    dpo = row(df, "dpo", "en")
    assert dpo["perplexity"] == pytest.approx(values[1], rel=1e-5)  # median of three
    assert dpo["perplexity_mean"] == pytest.approx(sum(values) / 3, rel=1e-5)
    assert dpo["perplexity_method"] == "causal-conditional"
    assert dpo["perplexity_model"] == str(tiny_model_dir)
    base = row(df, "base", "en")
    assert base["n_ppl_empty"] == 3  # "", "", "  "
    assert base["n_ppl_scored"] == 5
    assert base["expected_max_toxicity"] == pytest.approx(0.5)
    assert base["dist_2"] == pytest.approx((3 / 7 + 0.5 + 0) / 3)

    out = tmp_path / "out" / "metrics.csv"
    write_metrics_csv(df, out)
    back = pd.read_csv(out)
    assert back["expected_max_toxicity"].tolist() == pytest.approx(
        df["expected_max_toxicity"].tolist()
    )
    assert pd.isna(back.loc[back["model"] == "dpo", "count_INSULT_ge_thr"]).all()


def test_max_perplexity_drops(score_files, tiny_model_dir):
    config = MetricsConfig(diversity_tokenizer="whitespace", max_perplexity=1.0)
    dpo = row(compute_metrics(score_files, config, model_dir=tiny_model_dir), "dpo", "en")
    assert dpo["n_ppl_dropped"] == 3 and dpo["n_ppl_scored"] == 0
    assert math.isnan(dpo["perplexity"])


def test_compute_metrics_without_perplexity_leaves_it_empty(score_files, tiny_model_dir):
    config = MetricsConfig(perplexity=False, diversity_tokenizer="model")
    df = compute_metrics(score_files, config, model_dir=tiny_model_dir)
    assert df["perplexity"].isna().all()
    assert df["perplexity_method"].isna().all()
    # "model" tokenizer: WordLevel ids; dpo's p1: 9 tokens, "the" three times -> 7 unique.
    assert row(df, "dpo", "en")["dist_1"] == pytest.approx(7 / 9)
    no_model = compute_metrics(score_files, MetricsConfig(diversity_tokenizer="whitespace"))
    assert no_model["perplexity"].isna().all()  # perplexity on, but no model given


def test_base_sorted_first_then_the_order_evaluated(tmp_path):
    records = [sample(m, "p", 0, tox(0.1), language=lang) for m in ("zeta", "base", "dpo")
               for lang in ("fr", "ar")]  # fmt: skip
    path = write_lines(tmp_path / "s.jsonl", records)
    df = compute_metrics([path], MetricsConfig(perplexity=False, diversity_tokenizer="whitespace"))
    # base first; the others as they come in the score files (sft before sft_dpo, not by name)
    assert list(df["model"]) == ["base", "base", "zeta", "zeta", "dpo", "dpo"]
    assert list(df["model_order"]) == [1, 1, 0, 0, 2, 2]
    assert list(df["language"]) == ["ar", "fr"] * 3


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({k: v for k, v in sample("base", "p9", 0, tox(0.1)).items() if k != "scores"}),
         "missing field(s) 'scores'"),
        (json.dumps(sample("base", "p9", 0, tox("high"))), "scores.TOXICITY must be a number"),
        (json.dumps(sample("base", "p9", 0, tox(True))), "scores.TOXICITY must be a number"),
        (json.dumps(sample("base", "p9", 0, tox(3.2))), "outside [0, 1]"),
        (json.dumps(sample("base", "p9", 0, [0.1])), "'scores' must be an object"),
        (json.dumps(sample("base", "p1", 1, tox(0.1))), "duplicate sample"),
        (json.dumps({**sample("base", "p9", 0, tox(0.1)), "sample_index": "0"}), "sample_index"),
        (json.dumps({**sample("base", "p9", 0, tox(0.1)), "text": None}), "'text' must be"),
    ],
)  # fmt: skip
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "scores.jsonl"
    good = [json.dumps(sample("base", "p1", i, tox(0.1))) for i in range(2)]
    path.write_text("\n".join([*good, line]) + "\n", encoding="utf-8")
    out = tmp_path / "metrics.csv"
    config = MetricsConfig(perplexity=False, diversity_tokenizer="whitespace")
    with pytest.raises(DataError) as info:
        run_metrics([path], config, out)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind either


def test_missing_score_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_scores([tmp_path / "absent.jsonl"])


def test_unloadable_perplexity_model_names_the_folder(score_files, tmp_path):
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    out = tmp_path / "metrics.csv"
    config = MetricsConfig(diversity_tokenizer="whitespace")
    with pytest.raises(DataError, match=re.escape(f"{empty}: cannot load a causal LM")):
        run_metrics(score_files, config, out, model_dir=empty)
    assert not out.exists()


# ------------------------------------------------------------------------------ XG seq2seq
# mT5-style vocabulary: <pad>=0, </s>=1, <unk>=2, then the words.
T5_WORDS = ["<pad>", "</s>", "<unk>", *WORDS[3:]]


@pytest.fixture(scope="module")
def tiny_mt5_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MT5Config, MT5ForConditionalGeneration, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(T5_WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )  # mT5 appends </s> to every text
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    )
    torch.manual_seed(0)
    config = MT5Config(
        vocab_size=len(T5_WORDS), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny_mt5")
    MT5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def hf_loss(model, tokenizer, text: str) -> tuple[float, int]:
    """transformers' own loss for one unpadded text as encoder input and labels."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item(), ids.shape[1]


def test_xg_seq2seq_perplexity_by_the_formula(tiny_mt5_dir):
    from xdetox.components.metrics.seq2seq_perplexity import (
        load_seq2seq_lm,
        xg_seq2seq_perplexities,
    )

    model, tokenizer, _ = load_seq2seq_lm(tiny_mt5_dir, "cpu")
    pairs = [
        ("the cat", " sat on the mat"),
        ("a", " b"),
        ("", "dog dog"),  # no prompt: "" is just </s>, one label, nothing to subtract
        ("the", ""),  # empty continuation: skipped
        ("the cat", " sat on the mat"),  # a repeat gives the same value
    ]
    expected = []
    for prompt, text in pairs[:3]:
        loss_full, n_full = hf_loss(model, tokenizer, prompt + text)
        loss_prompt, n_prompt = hf_loss(model, tokenizer, prompt)
        # (L_full·(n_full−1) − L_prompt·(n_prompt−1)) / (n_full − n_prompt), then exp
        total = loss_full * (n_full - 1) - loss_prompt * (n_prompt - 1)
        expected.append(math.exp(total / (n_full - n_prompt)))
    assert hf_loss(model, tokenizer, "")[1] == 1
    for batch_size in (1, 5):
        values = xg_seq2seq_perplexities(model, tokenizer, pairs, batch_size=batch_size)
        assert values[:3] == pytest.approx(expected, rel=1e-5)
        assert math.isnan(values[3]) and values[4] == values[0]


def test_compute_metrics_with_the_xg_seq2seq_method(score_files, tiny_mt5_dir, tiny_model_dir):
    from xdetox.components.metrics.seq2seq_perplexity import load_seq2seq_lm

    # The fixture's continuations have no leading space ("the cat" + "the dog ran" makes an
    # unknown word), so a random model's approximation runs high: keep every value.
    config = MetricsConfig(diversity_tokenizer="whitespace", perplexity_method="xg-seq2seq",
                           perplexity_model=str(tiny_mt5_dir), max_perplexity=1e30)  # fmt: skip
    df = compute_metrics(score_files, config, model_dir=tiny_model_dir)  # base model not used
    dpo = row(df, "dpo", "en")
    assert dpo["perplexity_method"] == "xg-seq2seq"
    assert dpo["perplexity_model"] == str(tiny_mt5_dir)
    model, tokenizer, _ = load_seq2seq_lm(tiny_mt5_dir, "cpu")
    values = []
    for sample_record in DPO_EN:
        full = hf_loss(model, tokenizer, "the cat" + sample_record["text"])
        prompt = hf_loss(model, tokenizer, "the cat")
        values.append(math.exp((full[0] * (full[1] - 1) - prompt[0] * (prompt[1] - 1))
                               / (full[1] - prompt[1])))  # fmt: skip
    assert dpo["perplexity"] == pytest.approx(sorted(values)[1], rel=1e-5)
    # Three empty continuations, and "cat" glued to "the cat" adds no token ("catcat" is one
    # unknown word, as "cat" was): nothing to measure, skipped rather than made up.
    assert row(df, "base", "en")["n_ppl_empty"] == 4
    # A causal model cannot do the seq2seq method: one line naming the model.
    causal = config.model_copy(update={"perplexity_model": str(tiny_model_dir)})
    with pytest.raises(DataError, match="cannot load a seq2seq LM"):
        compute_metrics(score_files, causal)
