"""KFP component: merge a LoRA adapter into its base (``merge_and_unload``) for vLLM."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from xdetox.components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def merge(base_model: Input[Model], adapter: Input[Model], merged: Output[Model]):
    """Write a standalone Hugging Face model folder; a full model passes through unchanged."""
    from xdetox.components.merge.merge_lora import merge_adapter

    merged.metadata.update(merge_adapter(base_model.path, adapter.path, merged.path))
