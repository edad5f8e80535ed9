"""KFP component: merge a LoRA adapter into its base (``merge_and_unload``) for vLLM."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from xdetox.components.images import stage_image
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("merge"), install_kfp_package=False)
@documented(
    base_model="the base model the adapter was trained on",
    adapter="the LoRA adapter (or a full model, passed through)",
    merged="the standalone model folder",
)
def merge(base_model: Input[Model], adapter: Input[Model], merged: Output[Model]):
    """Write a standalone Hugging Face model folder; a full model passes through unchanged."""
    from xdetox.components.merge.merge_lora import merge_adapter

    merged.metadata.update(merge_adapter(base_model.path, adapter.path, merged.path))
    label = adapter.metadata.get("model") or adapter.metadata.get("method", "")
    merged.metadata.update({"xdetox_kind": "model", "model": label})
