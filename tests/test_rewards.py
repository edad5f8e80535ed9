"""Reward functions: classifier logit (tiny random RoBERTa / GPT-2 classifiers built locally)
and scorer-based rewards, with None passed through."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from xdetox.components.train.ppo.ppo_config import RewardConfig
from xdetox.components.train.ppo.rewards import (
    ClassifierReward,
    ScorerReward,
    build_reward_function,
)
from xdetox.errors import ConfigError, DataError

TEXTS = [
    " you are a kind person",
    " what a horrible rude idiot",
    " ok",
    " the weather is nice today and everyone is happy about it",
    "",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: two threads only contend; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _bpe() -> ByteLevelBPETokenizer:
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 3, vocab_size=300, min_frequency=1, special_tokens=SPECIALS)
    return bpe


@pytest.fixture(scope="module")
def roberta():
    """A tiny random RoBERTa classifier with a RoBERTa-style tokenizer (<s> text </s>)."""
    bpe = _bpe()
    bpe._tokenizer.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
        num_labels=2, id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1},
    )  # fmt: skip
    return RobertaForSequenceClassification(config).eval(), tokenizer


@pytest.fixture(scope="module")
def gpt2_classifier():
    """A tiny random GPT-2 classifier whose tokenizer has no pad token (pad = eos is set)."""
    bpe = _bpe()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="</s>")
    torch.manual_seed(1)
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer), num_labels=3,
    )  # fmt: skip
    return GPT2ForSequenceClassification(config).eval(), tokenizer


def _direct_logit(model, tokenizer, text: str, label: int) -> float:
    with torch.no_grad():
        return float(model(**tokenizer(text, return_tensors="pt")).logits[0, label])


@pytest.mark.parametrize("label", [0, 1])
def test_classifier_reward_is_the_raw_logit_of_the_label(roberta, label):
    model, tokenizer = roberta
    reward = ClassifierReward(model, tokenizer, label_index=label, batch_size=2)
    prompts = ["ignored prompt"] * len(TEXTS)
    got = reward(prompts, TEXTS)
    for text, value in zip(TEXTS, got, strict=True):
        # Completion text only: "" is still "<s></s>" for RoBERTa, so it gets a score.
        assert value == pytest.approx(_direct_logit(model, tokenizer, text, label), abs=1e-5)
    # The prompt plays no part.
    assert reward(["something else entirely"] * len(TEXTS), TEXTS) == pytest.approx(got, abs=1e-6)


def test_batching_gives_the_same_values_as_one_by_one(roberta, gpt2_classifier):
    for model, tokenizer in (roberta, gpt2_classifier):
        one = ClassifierReward(model, tokenizer, label_index=1, batch_size=1)
        many = ClassifierReward(model, tokenizer, label_index=1, batch_size=3)
        singles = [one([""], [text])[0] for text in TEXTS]
        assert many([""] * len(TEXTS), TEXTS) == pytest.approx(singles, abs=1e-5)


def test_gpt2_classifier_uses_last_real_token_and_skips_textless(gpt2_classifier):
    model, tokenizer = gpt2_classifier
    reward = ClassifierReward(model, tokenizer, label_index=2, batch_size=4)
    got = reward([""] * len(TEXTS), TEXTS)
    for text, value in zip(TEXTS[:-1], got[:-1], strict=True):
        assert value == pytest.approx(_direct_logit(model, tokenizer, text, 2), abs=1e-5)
    assert got[-1] is None  # "" has no tokens here: unscorable, not 0


def test_conversational_completions_are_scored_on_their_content(roberta):
    model, tokenizer = roberta
    reward = ClassifierReward(model, tokenizer)
    messages = [[{"role": "assistant", "content": text}] for text in TEXTS[:3]]
    assert reward([""] * 3, messages) == pytest.approx(reward([""] * 3, TEXTS[:3]), abs=1e-6)


def test_label_index_out_of_range_names_the_key(roberta):
    model, tokenizer = roberta
    with pytest.raises(ConfigError, match=r"rl\.reward\.label_index: 2 is out of range"):
        ClassifierReward(model, tokenizer, label_index=2)


def test_build_reward_function_loads_a_saved_classifier(roberta, tmp_path):
    model, tokenizer = roberta
    model.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    reward = build_reward_function(
        RewardConfig(classifier=str(tmp_path / "clf"), label_index=1, batch_size=2), device="cpu"
    )
    expected = [_direct_logit(model, tokenizer, t, 1) for t in TEXTS]
    assert reward([""] * len(TEXTS), TEXTS) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(DataError, match="missing-clf: cannot load reward classifier"):
        build_reward_function(RewardConfig(classifier=str(tmp_path / "missing-clf")))


class FakeScorer:
    """Scores TOXICITY by a table; records the languages it was asked for."""

    def __init__(self, table: dict[str, float | None]):
        self.table = table
        self.languages: list[str] = []

    def score_batch(self, texts, languages):
        self.languages.extend(languages)
        return [{"TOXICITY": self.table.get(t), "INSULT": 0.5} for t in texts]


def test_scorer_reward_transforms_and_passes_none_through():
    scorer = FakeScorer({"calm": 0.1, "nasty": 0.9, "broken": None, "weird": math.nan})
    texts = ["calm", "nasty", "broken", "weird"]
    one_minus = ScorerReward(scorer)
    assert one_minus(["p"] * 4, texts) == pytest.approx([0.9, 0.1, None, None])
    negate = ScorerReward(scorer, transform="negate")
    assert negate(["p"] * 4, texts) == pytest.approx([-0.1, -0.9, None, None])
    insult = ScorerReward(scorer, attribute="INSULT")
    assert insult(["p"] * 4, texts) == pytest.approx([0.5] * 4)


def test_scorer_reward_uses_the_language_column_else_the_default():
    scorer = FakeScorer({"a": 0.0, "b": 0.0})
    reward = ScorerReward(scorer, default_language="de")
    reward(["p", "q"], ["a", "b"], language=["fr", None])
    reward(["p"], ["a"])
    assert scorer.languages == ["fr", "de", "de"]


def test_scorer_reward_rejects_unknown_transform_and_short_results():
    with pytest.raises(ConfigError, match=r"rl\.reward\.transform"):
        ScorerReward(FakeScorer({}), transform="square")

    class Short:
        def score_batch(self, texts, languages):
            return []

    with pytest.raises(ValueError, match="0 results for 2 texts"):
        ScorerReward(Short())(["p", "q"], ["a", "b"])
