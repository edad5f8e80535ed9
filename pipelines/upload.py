"""Compile a registered pipeline from a config and upload it by name, one version per recipe.

On the server the pipeline is ``xdetox-<name>`` and each version is named
``<package version>-<config hash>`` (``-cache``/``-nocache`` appended when caching was forced),
where the hash is a short sha256 of the merged config's canonical JSON: the KFP UI then shows
which code and which recipe produced each run, and submitting the same recipe again reuses the
version instead of piling up identical copies.

Caching: kfp.Client only applies ``enable_caching`` to runs made from a local package, not to
runs of an uploaded version, so a forced choice is compiled into the spec (every task, loops
included) and becomes part of the version's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import yaml
from kfp import compiler

from xdetox import __version__
from xdetox.config import Config
from xdetox.errors import XdetoxError
from xdetox.pipelines.kfp_auth import Connection
from xdetox.pipelines.kfp_connect import kfp_call
from xdetox.pipelines.registry import cluster_pipeline_name, get_pipeline_factory

log = logging.getLogger(__name__)

HASH_CHARS = 12  # 48 bits: collisions between recipes of one project are not a concern
PAGE_SIZE = 100
# libyaml's C loader and dumper are several times faster on a 1,000-line spec.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def config_digest(config: Config) -> str:
    """sha256 of the config's canonical JSON (sorted keys, no spaces): stable across runs."""
    canonical = json.dumps(
        config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def version_name(config: Config, caching: bool | None = None) -> str:
    """``<package version>-<short config hash>``, plus ``-cache``/``-nocache`` when forced."""
    name = f"{__version__}-{config_digest(config)[:HASH_CHARS]}"
    if caching is not None:
        name += "-cache" if caching else "-nocache"
    return name


@dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline, ready to upload."""

    pipeline: str  # registry name, e.g. "detox"
    cluster_name: str  # name on the server, e.g. "xdetox-detox"
    version_name: str
    description: str
    path: Path
    spec: dict[str, Any]  # the pipeline spec (first YAML document)


@dataclass(frozen=True)
class VersionRef:
    pipeline_id: str
    version_id: str
    created: bool  # False when an existing version of the same name was reused


def set_caching(docs: list[dict], enabled: bool) -> int:
    """Set ``cachingOptions.enableCache`` on every task of every DAG; return how many."""
    spec = docs[0]
    dags = [spec.get("root", {}).get("dag", {})]
    dags += [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    count = 0
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task.setdefault("cachingOptions", {})["enableCache"] = enabled
            count += 1
    return count


def compile_package(
    config: Config, pipeline: str, out_dir: str | Path, caching: bool | None = None
) -> PipelinePackage:
    """Compile ``pipeline`` with ``config``'s defaults into ``out_dir/<cluster name>.yaml``."""
    factory = get_pipeline_factory(pipeline)
    cluster_name = cluster_pipeline_name(pipeline)
    path = Path(out_dir) / f"{cluster_name}.yaml"
    compiler.Compiler().compile(factory(config), str(path))
    docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER))
    if caching is not None:
        set_caching(docs, caching)
        text = yaml.dump_all(docs, Dumper=_YAML_DUMPER, sort_keys=True)
        path.write_text(text, encoding="utf-8")
    digest = config_digest(config)
    caching_note = {None: "as compiled", True: "forced on", False: "forced off"}[caching]
    description = (
        f"xdetox {__version__}; recipe {config.name!r}; config sha256 {digest}; "
        f"caching {caching_note}"
    )
    return PipelinePackage(
        pipeline=pipeline,
        cluster_name=cluster_name,
        version_name=version_name(config, caching),
        description=description,
        path=path,
        spec=docs[0],
    )


def _name_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def find_pipeline_id(client: kfp.Client, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline called ``name`` (in ``namespace`` when given), or None."""
    response = client.list_pipelines(filter=_name_filter(name), namespace=namespace)
    found = [p for p in response.pipelines or [] if name in (p.display_name, p.name)]
    if len(found) > 1:
        raise XdetoxError(f"several pipelines are named {name!r} on the server; remove one")
    return found[0].pipeline_id if found else None


def find_version_id(client: kfp.Client, pipeline_id: str, name: str) -> str | None:
    """The id of ``pipeline_id``'s version called ``name``, or None.

    Pages through all versions instead of filtering on the server: filter keys for versions
    differ between KFP releases, and a pipeline has at most a few hundred versions.
    """
    token = ""
    while True:
        response = client.list_pipeline_versions(
            pipeline_id, page_token=token, page_size=PAGE_SIZE, sort_by="created_at desc"
        )
        for version in response.pipeline_versions or []:
            if name in (version.display_name, version.name):
                return version.pipeline_version_id
        token = response.next_page_token or ""
        if not token:
            return None


def _normalised(value: Any) -> Any:
    # The server keeps the spec as a protobuf Struct, where every number is a double.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _warn_if_code_differs(stored: Any, package: PipelinePackage) -> None:
    """Warn when the reused version holds another spec than this checkout compiles.

    The version name covers the package version and the recipe, not uncommitted or unreleased
    code changes: with the same package version, an edited component would silently run as
    the old one. Only a warning, because servers may normalise specs in ways not seen here.
    """
    spec = getattr(stored, "pipeline_spec", None)
    if isinstance(spec, dict) and "root" not in spec:
        spec = spec.get("pipeline_spec")  # spec and platform spec stored together
    if not isinstance(spec, dict) or _normalised(spec) == _normalised(package.spec):
        return
    log.warning(
        "version %s of %s on the server was compiled from different code than this checkout "
        "(same package version and recipe); the run uses the server's copy: bump the package "
        "version to upload the change",
        package.version_name,
        package.cluster_name,
    )


def _conflict(exc: BaseException) -> bool:
    return isinstance(exc, kfp_server_api.ApiException) and exc.status == 409


def ensure_pipeline_version(
    client: kfp.Client, conn: Connection, package: PipelinePackage
) -> VersionRef:
    """Create the pipeline if absent, then its version if absent; reuse what exists.

    A 409 (another submit created the same thing a moment earlier) is answered by looking again.
    """
    name, namespace = package.cluster_name, conn.namespace
    with kfp_call(conn, f"looking up pipeline {name}"):
        pipeline_id = find_pipeline_id(client, name, namespace)
    if pipeline_id is None:
        log.info("creating pipeline %s", name)
        with kfp_call(conn, f"uploading pipeline {name}"):
            try:
                pipeline_id = client.upload_pipeline(
                    str(package.path),
                    pipeline_name=name,
                    description=f"xdetox pipeline {package.pipeline!r}; versions per recipe",
                    namespace=namespace,
                ).pipeline_id
            except kfp_server_api.ApiException as exc:
                if not _conflict(exc):
                    raise
                pipeline_id = find_pipeline_id(client, name, namespace)
                if pipeline_id is None:
                    raise
    with kfp_call(conn, f"looking up version {package.version_name} of {name}"):
        version_id = find_version_id(client, pipeline_id, package.version_name)
    if version_id is not None:
        log.info("reusing version %s of %s", package.version_name, name)
        with kfp_call(conn, f"reading version {package.version_name} of {name}"):
            stored = client.get_pipeline_version(pipeline_id, version_id)
        _warn_if_code_differs(stored, package)
        return VersionRef(pipeline_id, version_id, created=False)
    log.info("uploading version %s of %s", package.version_name, name)
    with kfp_call(conn, f"uploading version {package.version_name} of {name}"):
        try:
            version = client.upload_pipeline_version(
                str(package.path),
                pipeline_version_name=package.version_name,
                pipeline_id=pipeline_id,
                description=package.description,
            )
        except kfp_server_api.ApiException as exc:
            version_id = find_version_id(client, pipeline_id, package.version_name)
            if not _conflict(exc) or version_id is None:
                raise
            return VersionRef(pipeline_id, version_id, created=False)
    return VersionRef(pipeline_id, version.pipeline_version_id, created=True)


@contextlib.contextmanager
def compiled_package(
    config: Config, pipeline: str, caching: bool | None = None
) -> Iterator[PipelinePackage]:
    """:func:`compile_package` into a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="xdetox-upload-") as tmp:
        yield compile_package(config, pipeline, tmp, caching)
