"""KFP component: copy the base model (toy, folder, gs://, Hub id) into a Model artifact."""

from kfp import dsl
from kfp.dsl import Model, Output

from xdetox.components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def load_model(source: str, model: Output[Model]):
    """Materialise ``source`` as a Hugging Face model folder."""
    from xdetox.components.load_model.model_source import materialize_model

    model.metadata.update(materialize_model(source, model.path))
