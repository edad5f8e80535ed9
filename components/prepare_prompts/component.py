"""KFP component: normalise evaluation prompts (RTP-LX, RTP, JSONL, CSV) for all languages."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from xdetox.components.images import stage_image
from xdetox.config import DataConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("prepare_prompts"), install_kfp_package=False)
@documented(
    source="evaluation prompts: file/folder (RTP-LX, RTP, JSONL, CSV), gs:// prefix, or toy",
    languages="the languages kept (list of codes)",
    data=(DataConfig, "Only max_prompts_per_language and seed are read here."),
    prompts="prompts JSON lines of every language",
)
def prepare_prompts(source: str, languages: list, data: dict, prompts: Output[Dataset]):
    """Write one prompts JSON-lines file holding every requested language."""
    from xdetox.components.prepare_prompts.prompts import prepare_prompts as prepare
    from xdetox.config import DataConfig, validate_section

    config = validate_section(DataConfig, data, "pipeline parameter 'data'")
    counts = prepare(
        source,
        prompts.path,
        languages=list(languages),
        max_per_language=config.max_prompts_per_language,
        seed=config.seed,
    )
    prompts.metadata.update({f"n_{lang}": n for lang, n in counts.items()})
    prompts.metadata["source"] = source
