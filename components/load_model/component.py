"""KFP component: copy the base model (toy, folder, gs://, Hub id) into a Model artifact."""

from kfp import dsl
from kfp.dsl import Model, Output

from xdetox.components.images import stage_image
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("load_model"), install_kfp_package=False)
@documented(
    source="toy (the embedded toy model), a local folder, gs://bucket/prefix or a Hugging Face id",
    model="the model as a Hugging Face folder",
)
def load_model(source: str, model: Output[Model]):
    """Materialise ``source`` as a Hugging Face model folder."""
    from xdetox.models import materialize_model

    model.metadata.update(materialize_model(source, model.path))
    model.metadata["xdetox_kind"] = "model"  # labelled by its source (local run folder)
