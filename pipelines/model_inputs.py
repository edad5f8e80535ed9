"""A model named by a recipe, as a Model artifact the pipeline's tasks can read.

A model already on GCS is referenced where it lies with ``dsl.importer`` ("Special Case:
Importer Components", https://www.kubeflow.org/docs/components/pipelines/user-guides/components/importer-component/):
no task copies it into the pipeline root, and each consumer reads it from its ``gs://`` URI.
Any other source (the toy model, a folder, a Hugging Face Hub id) has no URI a pod can read,
so ``load_model`` materialises it as an artifact first.

Which of the two a pipeline holds is decided at compile time from the recipe's value (a shape
key: ``--param`` cannot turn a Hub id into a ``gs://`` URI or back). On KFP's local runner an
imported ``gs://`` URI has no local path (kfp.local maps it to ``/gcs/...``, which exists only
where GCS is mounted, and warns that only local files can be read), so local runs always load.
"""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl
from kfp.dsl import Model

from xdetox.components.load_model.component import load_model
from xdetox.pipelines.shape_keys import is_gcs

Configure = Callable[[dsl.PipelineTask, str, str], dsl.PipelineTask]


def imports_model(recipe_source: str | None, local: bool) -> bool:
    """Whether the model named ``recipe_source`` is imported rather than loaded."""
    return is_gcs(recipe_source) and not local


def model_artifact(
    configure: Configure,
    source,
    *,
    recipe_source: str,
    label: str,
    local: bool,
) -> dsl.PipelineChannel:
    """The Model output for ``source`` (a pipeline parameter whose default is ``recipe_source``).

    ``label`` names the model in display names and, for an import, in the artifact's metadata
    (the run folder's ``models/<label>``).
    """
    if imports_model(recipe_source, local):
        task = dsl.importer(
            artifact_uri=source,
            artifact_class=Model,
            reimport=False,
            metadata={"xdetox_kind": "model", "model": label},
        )
        task.set_display_name(f"import {label} model")
        return task.output
    task = configure(load_model(source=source), "load_model", f"load {label} model")
    return task.outputs["model"]
