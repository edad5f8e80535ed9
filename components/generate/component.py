"""KFP component: sample continuations for one language's prompts with one model."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from xdetox.components.images import stage_image
from xdetox.config import GenerationConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("generate"), install_kfp_package=False)
@documented(
    model="the Hugging Face model folder sampled from",
    prompts="prepared prompts JSON lines (every language)",
    language="the language whose prompts are sampled",
    model_label="the model column of the rows written (e.g. base, dpo)",
    generation=GenerationConfig,
    generations="generation JSON lines, one per sample",
)
def generate(
    model: Input[Model],
    prompts: Input[Dataset],
    language: str,
    model_label: str,
    generation: dict,
    generations: Output[Dataset],
):
    """Write generation JSON lines (one per sample) for ``language``."""
    from xdetox.components.generate.backends import generate_file
    from xdetox.components.generate.vllm_backend import VLLMOptions
    from xdetox.config import GenerationConfig, validate_section

    config = validate_section(GenerationConfig, generation, "pipeline parameter 'generation'")
    n = generate_file(
        model.path,
        prompts.path,
        generations.path,
        model_label=model_label,
        config=config,
        language=language,
        backend=config.backend,
        shard_size=config.shard_size,
        vllm_options=VLLMOptions.from_dict(config.vllm.model_dump()),
    )
    generations.metadata.update(
        {"xdetox_kind": "generations", "language": language, "model": model_label, "n": n}
    )
