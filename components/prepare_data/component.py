"""KFP component: read preference pairs, filter by length, split train/eval."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from xdetox.components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_data(
    source: str,
    data: dict,
    tokenizer_model: Input[Model],
    pairs: Output[Dataset],
    stats: Output[Metrics],
):
    """Write ``train.jsonl`` and ``eval.jsonl`` (prompt/chosen/rejected) into ``pairs``."""
    from xdetox.components.prepare_data.preference_data import prepare_pairs
    from xdetox.config import DataConfig, validate_section

    config = validate_section(DataConfig, data, "pipeline parameter 'data'")
    summary = prepare_pairs(source, pairs.path, config, tokenizer_dir=tokenizer_model.path)
    for key, value in summary.items():
        if isinstance(value, bool | int | float):
            stats.log_metric(key, float(value))
    pairs.metadata["source"] = source
