"""KFP component: read preference pairs, filter by length, split train/eval."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from xdetox.components.images import stage_image
from xdetox.config import DataConfig
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
    pairs.metadata["source"] = source
