"""A kfp.Client that fails fast and clearly, and the translation of its errors into one line.

kfp.Client checks the server's health while it is constructed and retries five times, five
seconds apart, on any API error: a wrong token would cost 25 s before the 401 shows. Here the
check is made once, with a connect timeout, and it also catches an HTML answer (a login page,
or a web server that is not KFP), which kfp would otherwise parse into an empty object.

Every call to the server goes through :func:`kfp_call`, which keeps kfp's own prints off
stdout (the CLI prints its own summary) and turns connection, HTTP and client errors into an
:class:`~xdetox.errors.XdetoxError` that names the host and what was being done, scrubbed of
secrets. Causes are logged at debug level, scrubbed too.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

import kfp
import kfp_server_api
import urllib3

from xdetox.errors import XdetoxError
from xdetox.pipelines.kfp_auth import TOKEN_ENV, Connection

log = logging.getLogger(__name__)

# (connect, read) seconds for the health check: an unroutable host fails in seconds, not minutes.
HEALTHZ_TIMEOUT = (10, 60)


class _Client(kfp.Client):
    """kfp.Client with a single, strict health check (see the module docstring)."""

    healthz: kfp_server_api.V2beta1GetHealthzResponse | None = None

    def get_kfp_healthz(self, sleep_duration: int = 5) -> kfp_server_api.V2beta1GetHealthzResponse:
        response = self._healthz_api.healthz_service_get_healthz(
            _preload_content=False, _request_timeout=HEALTHZ_TIMEOUT
        )
        content_type = response.headers.get("content-type", "") or ""
        try:
            data = json.loads(response.data) if "json" in content_type else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise XdetoxError(
                f"{self._existing_config.host} answered the KFP health check with "
                f"{content_type.split(';')[0] or 'no content type'}, not the KFP API's JSON: "
                "not a KFP endpoint, or a login page (check --host and the credentials)"
            )
        self.healthz = kfp_server_api.V2beta1GetHealthzResponse(
            multi_user=data.get("multi_user"), pipeline_store=data.get("pipeline_store")
        )
        return self.healthz


def connect(conn: Connection) -> kfp.Client:
    """A client for ``conn`` whose server answered a health check; errors are one line."""
    with kfp_call(conn, "connecting"), warnings.catch_warnings():
        # kfp warns on every construction that it needs KFP >= 2.0.0-beta.2.
        warnings.simplefilter("ignore", FutureWarning)
        client = _Client(**conn.client_kwargs())
        if client.healthz is None:  # kfp skips its check when a namespace is given
            client.get_kfp_healthz()
    if client.healthz.multi_user and not client.get_user_namespace():
        raise XdetoxError(
            f"KFP at {conn.host} is multi-user: pass --namespace (your profile namespace)"
        )
    return client


def _server_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error") or "")
    first = text.splitlines()[0] if text else ""
    return first[:200]


def _unreachable(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    # Order matters: in urllib3 NewConnectionError is a kind of ConnectTimeoutError.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "host name not found"
    if "refused" in str(reason).lower():
        return "connection refused"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return "TLS handshake failed (https against a plain-http port, or an untrusted cert?)"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "cannot open a connection"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return "no answer in time"
    return type(reason).__name__


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    # urllib3 logs a warning per retry ("Retrying ... Connection refused"): the error line we
    # raise says it once. Shown with --debug.
    pool_log = logging.getLogger("urllib3.connectionpool")
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool_log.setLevel(level)


def _http_error(conn: Connection, action: str, exc: kfp_server_api.ApiException) -> str:
    status = exc.status
    if status in (401, 403):
        how = {
            "token": f"check --token / {TOKEN_ENV}",
            "iap": "check --iap-client-id and your Google credentials",
            "in-cluster": f"check the pod's service account and token at {conn.sa_token_path}",
            "none": f"no credentials were sent: pass --token / {TOKEN_ENV}",
        }[conn.auth]
        return f"not authorised by KFP at {conn.host} (HTTP {status} while {action}): {how}"
    if status == 404:
        return (
            f"{conn.host} answered 404 while {action}: not a KFP endpoint? (--host is the KFP API "
            "or UI address, without /apis/v2beta1)"
        )
    if not status:  # kfp_server_api reports TLS failures as status 0
        return f"cannot talk to KFP at {conn.host} while {action}: {exc.reason}"
    message = _server_message(exc.body)
    return f"KFP at {conn.host} answered HTTP {status} while {action}" + (
        f": {message}" if message else ""
    )


@contextlib.contextmanager
def kfp_call(conn: Connection, action: str) -> Iterator[None]:
    """Run kfp client calls quietly; raise one-line, secret-free errors naming host and action."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), _quiet_retries():
            yield
    except XdetoxError as exc:
        raise XdetoxError(conn.redact(str(exc))) from None
    except kfp_server_api.ApiException as exc:
        log.debug("%s", conn.redact(f"KFP API error while {action}: {exc}"))
        raise XdetoxError(conn.redact(_http_error(conn, action, exc))) from None
    except urllib3.exceptions.HTTPError as exc:
        log.debug("%s", conn.redact(f"connection error while {action}: {exc!r}"))
        raise XdetoxError(
            f"cannot reach KFP at {conn.host} while {action}: {_unreachable(exc)}"
        ) from None
    except OSError as exc:  # e.g. the in-cluster token file vanished
        raise XdetoxError(conn.redact(f"{action}: {exc}")) from None
    except Exception as exc:  # kfp's ValueErrors and surprises: one line, never a secret
        log.debug("%s", conn.redact(traceback.format_exc()))
        first = (str(exc).strip().splitlines() or [""])[0]
        raise XdetoxError(
            conn.redact(f"KFP client failed while {action}: {type(exc).__name__}: {first}")
        ) from None
