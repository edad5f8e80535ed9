"""Where the KFP API is and how to authenticate to it, as users have it.

Sources, most explicit first:
    --host URL, else $KF_PIPELINES_ENDPOINT, else (inside a pod) the in-cluster service address
    --token, else --iap-client-id, else --in-cluster, else $KFP_TOKEN, else (inside a pod with a
    projected service-account token) the in-cluster credentials, else no authentication

A token is held only in :class:`Connection` (hidden from its ``repr``) and handed to kfp.Client;
every message built from server answers goes through :meth:`Connection.redact`, so a token
never reaches the terminal, a log or a compiled pipeline.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.errors import ConfigError

HOST_ENV = "KF_PIPELINES_ENDPOINT"  # kfp's own variable for the API address
TOKEN_ENV = "KFP_TOKEN"
UI_HOST_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp's variable for a UI served elsewhere
# kfp's variable and default path for the audience-bound token the kubelet projects into pods.
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
# The KFP API service as seen from a pod of the same cluster (KFP's system namespace).
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


@dataclass(frozen=True)
class Connection:
    """A resolved KFP endpoint and the one authentication method to use with it."""

    host: str
    auth: str  # "token", "iap", "in-cluster" or "none": shown to users, never the secret
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    iap_client_id: str | None = None
    sa_token_path: str | None = None
    ui_host: str | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``kfp.Client`` (imported lazily by the caller)."""
        kwargs: dict[str, Any] = {"host": self.host}
        if self.namespace:
            kwargs["namespace"] = self.namespace
        if self.ui_host:
            kwargs["ui_host"] = self.ui_host
        if self.auth == "token":
            kwargs["existing_token"] = self.token
        elif self.auth == "iap":
            kwargs["client_id"] = self.iap_client_id
        elif self.auth == "in-cluster":
            from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

            kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(self.sa_token_path)
        return kwargs

    def secrets(self) -> list[str]:
        """Every secret this connection may send, so messages can be scrubbed of them."""
        found = [self.token] if self.token else []
        if self.auth == "in-cluster" and self.sa_token_path:
            with contextlib.suppress(OSError):  # unreadable: nothing of it can be printed
                found.append(Path(self.sa_token_path).read_text(encoding="utf-8").strip())
        return [s for s in found if s]

    def redact(self, text: str) -> str:
        """``text`` with any secret of this connection replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    @property
    def ui(self) -> str:
        """Base address of the KFP UI, for links."""
        return self.ui_host or self.host

    def run_link(self, run_id: str) -> str:
        return f"{self.ui}/#/runs/details/{run_id}"

    def experiment_link(self, experiment_id: str) -> str:
        return f"{self.ui}/#/experiments/details/{experiment_id}"

    def version_link(self, pipeline_id: str, version_id: str) -> str:
        return f"{self.ui}/#/pipelines/details/{pipeline_id}/version/{version_id}"


def _clean(value: str | None) -> str | None:
    # Tokens pasted from files or `$(gcloud ...)` often end in a newline; empty means unset.
    value = value.strip() if value else None
    return value or None


def _check_url(value: str, source: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{source} {value!r}: expected a URL starting with http:// or https://")
    return value.rstrip("/")


def in_pod(env: Mapping[str, str]) -> bool:
    """True inside a Kubernetes pod (the kubelet sets this variable in every container)."""
    return bool(env.get("KUBERNETES_SERVICE_HOST"))


def resolve_connection(
    host: str | None = None,
    token: str | None = None,
    iap_client_id: str | None = None,
    in_cluster: bool = False,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """Combine flags and environment into one :class:`Connection` (see the module docstring)."""
    env = os.environ if env is None else env
    token, iap_client_id = _clean(token), _clean(iap_client_id)
    explicit = [name for name, on in (("--token", token), ("--iap-client-id", iap_client_id),
                                      ("--in-cluster", in_cluster)) if on]  # fmt: skip
    if len(explicit) > 1:
        raise ConfigError(f"{' and '.join(explicit)}: choose one way to authenticate")

    sa_path = env.get(SA_TOKEN_ENV) or SA_TOKEN_PATH
    env_token = _clean(env.get(TOKEN_ENV))
    if token:
        auth = "token"
    elif iap_client_id:
        auth = "iap"
    elif in_cluster:
        if not Path(sa_path).is_file():
            raise ConfigError(
                f"--in-cluster: no service-account token at {sa_path} (project one with "
                f"audience pipelines.kubeflow.org, or set {SA_TOKEN_ENV})"
            )
        auth = "in-cluster"
    elif env_token:
        auth, token = "token", env_token
    elif in_pod(env) and Path(sa_path).is_file():
        auth, in_cluster = "in-cluster", True
    else:
        auth = "none"

    if host:
        host = _check_url(host, "--host")
    elif env.get(HOST_ENV):
        host = _check_url(env[HOST_ENV], HOST_ENV)
    elif in_cluster:
        host = IN_CLUSTER_HOST
    else:
        raise ConfigError(
            f"--host is required: the KFP API or UI address, e.g. http://localhost:8080 after "
            f"`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` (or set {HOST_ENV})"
        )
    ui_host = env.get(UI_HOST_ENV)
    return Connection(
        host=host,
        auth=auth,
        namespace=_clean(namespace),
        token=token if auth == "token" else None,
        iap_client_id=iap_client_id if auth == "iap" else None,
        sa_token_path=sa_path if auth == "in-cluster" else None,
        ui_host=_check_url(ui_host, UI_HOST_ENV) if ui_host else None,
    )
