"""Where the project is running, decided once, when definitions are built (never at import time)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from llmplat_dagster.s3uri import is_s3, parse_s3_uri

ENVIRONMENTS = {"local": "dev", "prod": "prod"}  # environment -> manifest overlay


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable."""


def _pairs(raw: str, name: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SettingsError(f"{name}: expected VARIANT=VALUE[,VARIANT=VALUE], got {item!r}")
        out[key] = value
    return out


def _int(raw: str, name: str, minimum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _cron_valid(expression: str) -> bool:
    """What the schedule will accept: Dagster's own check, through its public schedule constructor."""
    import dagster as dg

    try:
        dg.ScheduleDefinition(name="cron_probe", cron_schedule=expression, job_name="cron_probe")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def _urls(endpoints: Mapping[str, str]) -> dict[str, str]:
    for variant, url in endpoints.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"LLMPLAT_ENDPOINTS: {variant}={url!r} is not an http(s) URL such as http://127.0.0.1:8001"
            )
        try:
            parts.port  # noqa: B018 - raises for a port outside 0-65535 or not a number
        except ValueError as exc:
            raise SettingsError(f"LLMPLAT_ENDPOINTS: {variant}={url!r}: {exc}") from None
    return dict(endpoints)


def env_flag(raw: str, name: str) -> bool | None:
    """A 1/0 switch from the environment (None when unset); anything else is refused naming the variable."""
    if not raw:
        return None
    if raw.lower() in ("1", "true", "yes", "0", "false", "no"):
        return raw.lower() in ("1", "true", "yes")
    raise SettingsError(f"{name}={raw!r}: expected 1 or 0")


def _endpoints(raw: str) -> dict[str, str]:
    """`variant=url,...` or the path of a JSON file (what `llmplat sim fleet --endpoints-file` writes)."""
    if raw and not raw.lstrip().startswith(("{",)) and "=" not in raw:
        try:
            raw = Path(raw).read_text()
        except OSError as exc:
            raise SettingsError(f"LLMPLAT_ENDPOINTS: cannot read {raw}: {exc.strerror}") from None
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"LLMPLAT_ENDPOINTS: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError(
                f"LLMPLAT_ENDPOINTS: expected a JSON object {{variant: url}}, got {type(data).__name__}"
            )
        return {str(k): str(v) for k, v in data.items()}
    return _pairs(raw, "LLMPLAT_ENDPOINTS")


@dataclass(frozen=True)
class Settings:
    environment: str = "local"
    catalog_path: Path | None = None
    revisions: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    crd_dirs: tuple[Path, ...] = ()
    strict_schemas: bool = False  # custom resources no CRD schema checks fail instead of warning
    endpoints: Mapping[str, str] = field(default_factory=dict)
    home: Path = Path(".dagster_home")
    results_uri: str | None = None
    nightly_cron: str = "0 2 * * *"
    nightly_timezone: str = "UTC"
    trend_nights: int = 14
    first_night: str = "2026-11-28"
    hf_endpoint: str | None = None
    hf_timeout_s: float = 10.0
    resolve_revisions: bool | None = None  # None: in prod, or locally when HF_ENDPOINT is set
    promptset_s3_uri: str | None = None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(
                f"LLMPLAT_ENV={self.environment!r} is not an environment; expected one of {sorted(ENVIRONMENTS)}"
            )
        try:
            ZoneInfo(self.nightly_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"LLMPLAT_NIGHTLY_TZ={self.nightly_timezone!r} is not an IANA time zone") from None
        try:
            dt.date.fromisoformat(self.first_night)
        except ValueError:
            raise SettingsError(f"LLMPLAT_FIRST_NIGHT={self.first_night!r} is not a date (YYYY-MM-DD)") from None
        if not _cron_valid(self.nightly_cron):
            raise SettingsError(f"LLMPLAT_NIGHTLY_CRON={self.nightly_cron!r} is not a cron expression")
        for name, uri in (
            ("LLMPLAT_PROMPTSET_S3_URI", self.promptset_s3_uri),
            ("LLMPLAT_RESULTS_URI", self.results_uri),
        ):
            if uri and (is_s3(uri) or name == "LLMPLAT_PROMPTSET_S3_URI"):
                try:
                    parse_s3_uri(uri, what=name)
                except ValueError as exc:
                    raise SettingsError(str(exc)) from None
        if self.trend_nights < 1:
            raise SettingsError(f"LLMPLAT_TREND_NIGHTS={self.trend_nights} must be at least 1 (nights in the trend)")
        if not self.hf_timeout_s > 0:
            raise SettingsError(f"LLMPLAT_HF_TIMEOUT_S={self.hf_timeout_s:g} must be more than 0 seconds")
        _urls(self.endpoints)
        for folder in self.crd_dirs:
            if not Path(folder).is_dir():
                raise SettingsError(
                    f"LLMPLAT_CRD_DIR: {folder} is not a folder (CRD YAML for ScaledObject, ServiceMonitor)"
                )
        if self.catalog_path is not None and not Path(self.catalog_path).is_file():
            raise SettingsError(f"LLMPLAT_CATALOG={str(self.catalog_path)!r} is not a file")
        if self.environment == "prod" and self.results_uri and not is_s3(self.results_uri):
            # Run pods are ephemeral: results on their disk would vanish with the pod.
            raise SettingsError(
                f"LLMPLAT_RESULTS_URI={self.results_uri!r}: prod keeps results in S3; expected s3://BUCKET/PREFIX"
            )

    @property
    def hub_online(self) -> bool:
        """Whether rollouts ask the Hub which commit a branch is (the local default is offline)."""
        if self.resolve_revisions is not None:
            return self.resolve_revisions
        return self.environment == "prod" or bool(self.hf_endpoint)

    @property
    def overlay(self) -> str:
        return ENVIRONMENTS[self.environment]

    @property
    def state_dir(self) -> Path:
        """Where llmplat keeps local state (dry-run records, checkpoints, results) inside DAGSTER_HOME."""
        return self.home / "llmplat"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The one function that reads the environment (see README, "Configuration")."""
        env = os.environ if environ is None else environ
        return cls(
            environment=env.get("LLMPLAT_ENV", "local"),
            catalog_path=Path(env["LLMPLAT_CATALOG"]) if env.get("LLMPLAT_CATALOG") else None,
            revisions=_pairs(env.get("LLMPLAT_MODEL_REVISIONS", ""), "LLMPLAT_MODEL_REVISIONS"),
            image=env.get("LLMPLAT_VLLM_IMAGE") or None,
            crd_dirs=tuple(Path(p) for p in env.get("LLMPLAT_CRD_DIR", "").split(os.pathsep) if p),
            strict_schemas=bool(env_flag(env.get("LLMPLAT_STRICT_SCHEMAS", ""), "LLMPLAT_STRICT_SCHEMAS")),
            endpoints=_endpoints(env.get("LLMPLAT_ENDPOINTS", "")),
            home=Path(env.get("DAGSTER_HOME") or ".dagster_home"),
            results_uri=env.get("LLMPLAT_RESULTS_URI") or None,
            nightly_cron=env.get("LLMPLAT_NIGHTLY_CRON") or "0 2 * * *",
            nightly_timezone=env.get("LLMPLAT_NIGHTLY_TZ") or "UTC",
            trend_nights=_int(env.get("LLMPLAT_TREND_NIGHTS") or "14", "LLMPLAT_TREND_NIGHTS"),
            first_night=env.get("LLMPLAT_FIRST_NIGHT") or "2026-11-28",
            hf_endpoint=env.get("HF_ENDPOINT") or None,
            hf_timeout_s=float(_int(env.get("LLMPLAT_HF_TIMEOUT_S") or "10", "LLMPLAT_HF_TIMEOUT_S")),
            promptset_s3_uri=env.get("LLMPLAT_PROMPTSET_S3_URI") or None,
            resolve_revisions=env_flag(env.get("LLMPLAT_RESOLVE_REVISIONS", ""), "LLMPLAT_RESOLVE_REVISIONS"),
        )
