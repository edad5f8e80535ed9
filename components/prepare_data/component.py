"""KFP components: preference pairs for DPO, read from a source (``prepare_data``: filter by
length, split train/eval) or made from the base model's own samples (``self_pairs``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from xdetox.components.images import stage_image
from xdetox.config import DataConfig, GenerationConfig, ScoringConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("prepare_data"), install_kfp_package=False)
@documented(
    source="preference pairs: toxicity_pairwise folder/file, gs:// prefix, or toy",
    data=DataConfig,
    tokenizer_source="model (toy, folder, gs://, Hub id) whose tokenizer counts tokens for "
    "the length filter; empty: none",
    pairs="train.jsonl and eval.jsonl (prompt, chosen, rejected)",
    stats="the numbers of stats.json (pairs read, filtered, kept per split)",
)
def prepare_data(
    source: str,
    data: dict,
    tokenizer_source: str,
    pairs: Output[Dataset],
    stats: Output[Metrics],
):
    """Write ``train.jsonl`` and ``eval.jsonl`` (prompt/chosen/rejected) into ``pairs``."""
    from xdetox.components.prepare_data.preference_data import prepare_pairs
    from xdetox.config import DataConfig, validate_section

    config = validate_section(DataConfig, data, "pipeline parameter 'data'")
    # A model source (toy, folder, gs://, Hub id; "" = none): only its tokenizer is fetched,
    # and only when data.length_filter counts tokens.
    summary = prepare_pairs(source, pairs.path, config, tokenizer_source=tokenizer_source or None)
    for key, value in summary.items():
        if isinstance(value, bool | int | float):
            stats.log_metric(key, float(value))
    pairs.metadata.update({"source": source, "xdetox_kind": "pairs"})


@dsl.component(base_image=stage_image("self_pairs"), install_kfp_package=False)
@documented(
    base_model="the model whose own samples are paired (a Hugging Face folder)",
    prompts="prepared prompts JSON lines; data.self_pairs.language is sampled, unless "
    "data.self_pairs.prompts names another source",
    data=(DataConfig, "self_pairs, eval_fraction, max_pairs and seed are read here."),
    generation=(GenerationConfig, "Only backend, batch and shard sizes and vllm are read."),
    scoring=(ScoringConfig, "The scorer unless data.self_pairs.scorer names one."),
    pairs="train.jsonl and eval.jsonl (prompt, chosen, rejected), scored_samples.jsonl",
    stats="the numbers of stats.json (prompts, samples, pairs kept and dropped, margins)",
)
def self_pairs(
    base_model: Input[Model],
    prompts: Input[Dataset],
    data: dict,
    generation: dict,
    scoring: dict,
    pairs: Output[Dataset],
    stats: Output[Metrics],
):
    """Pair the least and the most toxic of the base model's samples per prompt."""
    import tempfile
    from pathlib import Path

    from xdetox.components.prepare_data.make_self_pairs import make_self_pairs
    from xdetox.components.prepare_prompts.prompts import prepare_prompts
    from xdetox.config import DataConfig, GenerationConfig, ScoringConfig, validate_section

    config = validate_section(DataConfig, data, "pipeline parameter 'data'")
    settings = config.self_pairs
    with tempfile.TemporaryDirectory(prefix="xdetox-prompts-") as tmp:
        prompts_path = Path(prompts.path)
        if settings.prompts:  # a source of its own instead of the run's evaluation prompts
            prompts_path = Path(tmp) / "prompts.jsonl"
            prepare_prompts(settings.prompts, prompts_path, languages=[settings.language],
                            max_per_language=None, seed=config.seed)  # fmt: skip
        summary = make_self_pairs(
            base_model.path,
            prompts_path,
            pairs.path,
            data=config,
            generation=validate_section(GenerationConfig, generation, "parameter 'generation'"),
            scoring=validate_section(ScoringConfig, scoring, "pipeline parameter 'scoring'"),
        )
    for key, value in summary.items():
        if isinstance(value, bool | int | float):
            stats.log_metric(key, float(value))
    pairs.metadata.update({"source": "self", "xdetox_kind": "pairs"})
    # Which prompts were trained on: the evaluation's own ones unless a source was named.
    pairs.metadata["prompts"] = settings.prompts or "evaluation prompts"


@dsl.component(base_image=stage_image("prepare_data"), install_kfp_package=False)
@documented(
    pairs="prepared preference pairs (train.jsonl, eval.jsonl)",
    mode="swapped: every pair's chosen and rejected exchanged; shuffled: each pair's with "
    "probability 1/2 (training.control)",
    seed="the coin of shuffled (training.seed)",
    control_pairs="the same pairs, reversed, for the control arm",
    stats="pairs read and reversed per split",
)
def control_pairs(
    pairs: Input[Dataset],
    mode: str,
    seed: int,
    control_pairs: Output[Dataset],
    stats: Output[Metrics],
):
    """The control arm's pairs: the run's pairs with the preference reversed."""
    from xdetox.components.prepare_data.control_pairs import write_control_pairs

    summary = write_control_pairs(pairs.path, control_pairs.path, mode, seed)  # type: ignore[arg-type]
    for key, value in summary.items():
        if isinstance(value, int) and not isinstance(value, bool):
            stats.log_metric(key, float(value))
    control_pairs.metadata.update({"xdetox_kind": "control_pairs", "control": mode})
