"""Where the project is running, decided once, when definitions are built (never at import time)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
        return {str(k): str(v) for k, v in data.items()}
    return _pairs(raw, "LLMPLAT_ENDPOINTS")


@dataclass(frozen=True)
class Settings:
    environment: str = "local"
    catalog_path: Path | None = None
    revisions: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    crd_dirs: tuple[Path, ...] = ()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    home: Path = Path(".dagster_home")
    results_uri: str | None = None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(
                f"LLMPLAT_ENV={self.environment!r} is not an environment; expected one of {sorted(ENVIRONMENTS)}"
            )
        if self.environment == "prod" and self.results_uri and not self.results_uri.startswith("s3://"):
            # Run pods are ephemeral: results on their disk would vanish with the pod.
            raise SettingsError(
                f"LLMPLAT_RESULTS_URI={self.results_uri!r}: prod keeps results in S3; expected s3://BUCKET/PREFIX"
            )

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
            endpoints=_endpoints(env.get("LLMPLAT_ENDPOINTS", "")),
            home=Path(env.get("DAGSTER_HOME") or ".dagster_home"),
            results_uri=env.get("LLMPLAT_RESULTS_URI") or None,
        )
