"""Earth Engine authentication: a service-account key file, or the default credentials.

Messages name the key file and what is wrong with it (missing fields, wrong type), never its
contents; tokens never reach a message or a log line from here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from socmap.errors import ConfigError, EarthEngineError, InputNotFound
from socmap.sources.earthengine._expr import import_ee

__all__ = ["EE_SCOPES", "initialize"]

logger = logging.getLogger("socmap.sources.earthengine")

#: OAuth scopes requested for a service account (those of ``ee.ServiceAccountCredentials``).
EE_SCOPES = (
    "https://www.googleapis.com/auth/earthengine",
    "https://www.googleapis.com/auth/cloud-platform",
)
_KEY_FIELDS = ("client_email", "private_key", "token_uri")


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _service_account(path: Path) -> tuple[Any, str | None]:
    """Credentials and project id of a service-account key file (read, never echoed)."""
    from google.oauth2 import service_account

    where = repr(str(path))
    if not path.is_file():
        raise InputNotFound(
            f"service-account key {where} does not exist; create a JSON key for the service "
            "account (Cloud console: IAM > Service accounts > Keys) and pass its path "
            "(CLI: --key FILE)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"service-account key {where} is not a readable JSON file ({type(exc).__name__}); "
            "download the key again in JSON format"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise ConfigError(
            f"{where} is not a service-account key (its 'type' is {kind!r}, not "
            "'service_account'); pass a service account's JSON key, or omit the key to use "
            "your own credentials (`earthengine authenticate`)"
        )
    missing = [f for f in _KEY_FIELDS if not info.get(f)]
    if missing:
        raise ConfigError(
            f"service-account key {where} lacks {missing!r}; download a new key for the "
            "service account"
        )
    try:
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=list(EE_SCOPES)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the private key in {where} cannot be loaded ({type(exc).__name__}); the file is "
            "damaged or not a service-account key: download a new key"
        ) from None
    project = info.get("project_id")
    return credentials, str(project) if project else None


def initialize(
    *,
    service_account_key: str | Path | None = None,
    project: str | None = None,
    url: str | None = None,
    timeout_s: float | None = 300.0,
) -> None:
    """Initialise the Earth Engine client for pulls and sampling.

    Parameters
    ----------
    service_account_key
        Path of a service account's JSON key file. Without it the default credentials are
        used: those stored by ``earthengine authenticate``, or Application Default
        Credentials (``gcloud auth application-default login``, ``GOOGLE_APPLICATION_CREDENTIALS``).
    project
        Google Cloud project billed for the requests; defaults to the key's ``project_id``
        (or the credentials' quota project).
    url
        Base URL of the Earth Engine REST API (default: Google's); tests point it at a local
        fake server.
    timeout_s
        Per-request timeout in seconds (``None`` or 0: none). A timed-out request counts as
        a transient failure and is retried.

    Raises
    ------
    InputNotFound
        The key file does not exist.
    ConfigError
        The key file is not a service-account JSON key.
    EarthEngineError
        Earth Engine refused the credentials or the project, or could not be reached.
    """
    import google.auth.exceptions

    ee = import_ee()
    key_path = Path(service_account_key).expanduser() if service_account_key is not None else None
    credentials: Any = "persistent"
    if key_path is not None:
        credentials, key_project = _service_account(key_path)
        project = project or key_project
    who = f"service-account key {str(key_path)!r}" if key_path else "the default credentials"
    try:
        ee.Initialize(credentials, url=url, project=project)
        # Our retries are the only ones (see _client); then the request timeout.
        ee.data.setMaxRetries(0)
        if timeout_s:
            ee.data.setDeadline(int(float(timeout_s) * 1000))
    except google.auth.exceptions.GoogleAuthError as exc:
        raise EarthEngineError(
            f"authentication with {who} failed ({type(exc).__name__}: "
            f"{_one_line(exc.args[0] if exc.args else '')}); check that the key is active and "
            "the service account is registered for Earth Engine"
        ) from None
    except ee.EEException as exc:
        fix = (
            "pass the Cloud project registered for Earth Engine (CLI: --project P)"
            if "project" in str(exc).lower()
            else "run `earthengine authenticate`, or pass a service-account key (CLI: --key FILE)"
            if key_path is None
            else "check the key and the project"
        )
        raise EarthEngineError(
            f"Earth Engine initialisation with {who} failed: {_one_line(exc)}; {fix}"
        ) from None
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise EarthEngineError(
            f"cannot reach Earth Engine{f' at {url!r}' if url else ''} "
            f"({type(exc).__name__}); check the network connection"
        ) from None
    logger.info("Earth Engine initialised with %s (project %r)", who, project)
