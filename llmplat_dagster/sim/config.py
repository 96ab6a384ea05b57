"""Simulator configuration: vLLM's own CLI flags plus ``--sim-*`` knobs.

A rendered Deployment's container args must run unchanged, so the parser accepts vLLM's flag set and
only warns about flags it does not know (``parse_known_args``), instead of failing the pod.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field

from llmplat_dagster.vllm_flags import EXTRA_FLAGS

log = logging.getLogger("llmplat.sim")


@dataclass
class SimConfig:
    """Everything one simulated server needs; built from argv or directly in tests."""

    model: str = "mistralai/Mistral-7B-Instruct-v0.2"
    served_model_names: list[str] = field(default_factory=list)
    revision: str | None = None
    quantization: str | None = None
    dtype: str = "auto"
    max_model_len: int = 4096
    max_num_seqs: int = 256
    gpu_memory_utilization: float = 0.9
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    lora_modules: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    # --- simulator-only ---
    seed: int = 0
    time_scale: float = 1.0
    ttft_base_s: float | None = None
    prefill_per_token_s: float | None = None
    itl_s: float | None = None
    batch_slowdown: float = 0.04
    startup_delay_s: float = 0.0
    quant_noise: float | None = None
    lora_noise: float = 0.3
    reference_model: str | None = None
    kv_capacity_tokens: int | None = None
    metrics_generation: str = "v1"
    error_rate: float = 0.0
    error_status: int = 500
    retry_after_s: int = 1
    slow_rate: float = 0.0
    slow_delay_s: float = 1.0
    disconnect_rate: float = 0.0
    disconnect_after_chunks: int = 3
    exit_after: int | None = None
    judge_malformed_rate: float = 0.0
    judge_fence_rate: float = 0.3
    judge_prose_rate: float = 0.2
    unknown_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def served_names(self) -> list[str]:
        return self.served_model_names or [self.model]

    @property
    def is_quantized(self) -> bool:
        return bool(self.quantization) or any(s in self.model.lower() for s in ("-awq", "-gptq"))

    @property
    def effective_quant_noise(self) -> float:
        if self.quant_noise is not None:
            return self.quant_noise
        return 0.3 if self.is_quantized else 0.0  # logit noise std; sim/README.md "Calibration"


# (field, flag, lowest, highest, lowest allowed itself): what each number may be. Zero sequences would queue every
# request forever (and keep the server from ever shutting down); a port past 65535 cannot be bound.
_RANGES = (
    ("port", "--port", 0, 65535, True),
    ("max_model_len", "--max-model-len", 1, None, True),
    ("max_num_seqs", "--max-num-seqs", 1, None, True),
    ("gpu_memory_utilization", "--gpu-memory-utilization", 0.0, 1.0, False),
    ("max_loras", "--max-loras", 1, None, True),
    ("time_scale", "--sim-time-scale", 0.0, None, False),
    ("batch_slowdown", "--sim-batch-slowdown", 0.0, None, True),
    ("startup_delay_s", "--sim-startup-delay", 0.0, None, True),
    ("lora_noise", "--sim-lora-noise", 0.0, 1.0, True),
    ("quant_noise", "--sim-quant-noise", 0.0, None, True),  # a standard deviation of logit noise, not a rate
    ("ttft_base_s", "--sim-ttft-base", 0.0, None, True),
    ("prefill_per_token_s", "--sim-prefill-per-token", 0.0, None, True),
    ("itl_s", "--sim-itl", 0.0, None, True),
    ("kv_capacity_tokens", "--sim-kv-capacity-tokens", 1, None, True),
    ("error_rate", "--sim-error-rate", 0.0, 1.0, True),
    ("retry_after_s", "--sim-retry-after", 0, None, True),
    ("slow_rate", "--sim-slow-rate", 0.0, 1.0, True),
    ("slow_delay_s", "--sim-slow-delay", 0.0, None, True),
    ("disconnect_rate", "--sim-disconnect-rate", 0.0, 1.0, True),
    ("disconnect_after_chunks", "--sim-disconnect-after-chunks", 0, None, True),
    ("exit_after", "--sim-exit-after", 1, None, True),
    ("judge_malformed_rate", "--sim-judge-malformed-rate", 0.0, 1.0, True),
    ("judge_fence_rate", "--sim-judge-fence-rate", 0.0, 1.0, True),
    ("judge_prose_rate", "--sim-judge-prose-rate", 0.0, 1.0, True),
)


def config_problems(config: SimConfig) -> list[str]:
    """Every value outside what the flag allows, each naming the flag."""
    problems = []
    for name, flag, low, high, closed in _RANGES:
        value = getattr(config, name)
        if value is None:
            continue
        too_low = value < low if closed else value <= low
        if too_low or (high is not None and value > high) or value != value:
            bound = f"{'at least' if closed else 'more than'} {low:g}" + (f" and at most {high:g}" if high else "")
            problems.append(f"{flag} {value!r} must be {bound}")
    return problems


def _parse_lora_modules(values: list[str]) -> dict[str, str]:
    """vLLM accepts ``name=path`` or a JSON object ``{"name":..,"path":..,"base_model_name":..}``."""
    modules: dict[str, str] = {}
    for value in values:
        value = value.strip()
        if value.startswith("{"):
            try:
                obj = json.loads(value)
                modules[str(obj["name"])] = str(obj["path"])
            except (ValueError, KeyError, TypeError) as exc:
                raise argparse.ArgumentTypeError(
                    f"invalid --lora-modules entry {value!r}: want JSON with 'name' and 'path' ({exc})"
                ) from None
        elif "=" in value:
            name, path = value.split("=", 1)
            modules[name] = path
        else:
            raise argparse.ArgumentTypeError(f"invalid --lora-modules entry {value!r}; want name=path")
    return modules


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmplat sim serve",
        description="vLLM-compatible simulator: vLLM's flags plus --sim-* knobs (see sim/README.md).",
    )
    v = p.add_argument_group("vLLM flags")
    v.add_argument("model_tag", nargs="?", help="positional model, as in `vllm serve MODEL`")
    v.add_argument("--model", default=None)
    v.add_argument("--served-model-name", nargs="+", default=[])
    v.add_argument("--revision", default=None)
    v.add_argument("--quantization", "-q", default=None)
    v.add_argument("--dtype", default="auto")
    v.add_argument("--max-model-len", type=int, default=4096)
    v.add_argument("--max-num-seqs", type=int, default=256)
    v.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    v.add_argument("--enable-lora", action="store_true")
    v.add_argument("--max-loras", type=int, default=1)
    v.add_argument("--max-lora-rank", type=int, default=16)
    v.add_argument("--lora-modules", nargs="+", default=[])
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    # Flags the rendered Deployment may pass that change nothing the simulator models: accepted, not warned about.
    v.add_argument("--enforce-eager", action="store_true")
    v.add_argument("--max-num-batched-tokens", type=int, default=None)
    v.add_argument("--otlp-traces-endpoint", default=None)
    for flag, spec in EXTRA_FLAGS.items():
        v.add_argument(flag, action="store_true") if spec.kind == "bool" else v.add_argument(flag, default=None)
    s = p.add_argument_group("simulator flags")
    s.add_argument("--sim-seed", type=int, default=0, help="seed of the reference text and fault draws")
    s.add_argument("--sim-time-scale", type=float, default=1.0, help="multiply every latency (0.02 = 50x)")
    s.add_argument("--sim-ttft-base", type=float, default=None, help="seconds before prefill, unscaled")
    s.add_argument("--sim-prefill-per-token", type=float, default=None, help="seconds per prompt token")
    s.add_argument("--sim-itl", type=float, default=None, help="seconds per output token at batch 1")
    s.add_argument("--sim-batch-slowdown", type=float, default=0.04, help="ITL growth per extra running seq")
    s.add_argument("--sim-startup-delay", type=float, default=0.0, help="seconds of 'model load' (503s)")
    s.add_argument("--sim-quant-noise", type=float, default=None, help="std of quantization's logit noise (0.3)")
    s.add_argument("--sim-lora-noise", type=float, default=0.3, help="share of prompts an adapter answers anew")
    s.add_argument("--sim-reference-model", default=None, help="key of the reference text")
    s.add_argument("--sim-kv-capacity-tokens", type=int, default=None)
    s.add_argument("--sim-metrics-generation", "--metrics-generation", choices=["v0", "v1"], default="v1")
    s.add_argument("--sim-error-rate", type=float, default=0.0)
    s.add_argument("--sim-error-status", type=int, choices=[429, 500, 503], default=500)
    s.add_argument("--sim-retry-after", type=int, default=1, help="Retry-After seconds on 429/503")
    s.add_argument("--sim-slow-rate", type=float, default=0.0)
    s.add_argument("--sim-slow-delay", type=float, default=1.0, help="extra seconds (scaled) when slow")
    s.add_argument("--sim-disconnect-rate", type=float, default=0.0)
    s.add_argument("--sim-disconnect-after-chunks", type=int, default=3)
    s.add_argument("--sim-exit-after", type=int, default=None, help="stop after N generation requests")
    s.add_argument("--sim-judge-malformed-rate", type=float, default=0.0)
    s.add_argument("--sim-judge-fence-rate", type=float, default=0.3)
    s.add_argument("--sim-judge-prose-rate", type=float, default=0.2)
    return p


def parse_args(argv: list[str]) -> SimConfig:
    """Parse vLLM + sim flags; unknown flags (and their values) are logged and ignored."""
    parser = build_parser()
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        log.warning("ignoring vLLM flags the simulator does not model: %s", " ".join(unknown))
    model = ns.model or ns.model_tag or SimConfig.model
    # parse_known_args may hand an unknown flag's value to the positional model_tag: e.g.
    # `--model M --kv-cache-dtype fp8` leaves 'fp8' there. Only trust the positional without --model.
    if ns.model and ns.model_tag:
        unknown = [*unknown, ns.model_tag]
        log.warning("ignoring stray argument %r (probably the value of an unknown flag)", ns.model_tag)
    try:
        return _config(ns, model, unknown)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))  # exits 2 with the usage line, like any other bad flag


def _config(ns: argparse.Namespace, model: str, unknown: list[str]) -> SimConfig:
    return SimConfig(
        model=model,
        served_model_names=list(ns.served_model_name),
        revision=ns.revision,
        quantization=ns.quantization,
        dtype=ns.dtype,
        max_model_len=ns.max_model_len,
        max_num_seqs=ns.max_num_seqs,
        gpu_memory_utilization=ns.gpu_memory_utilization,
        enable_lora=ns.enable_lora,
        max_loras=ns.max_loras,
        max_lora_rank=ns.max_lora_rank,
        lora_modules=_parse_lora_modules(ns.lora_modules),
        host=ns.host,
        port=ns.port,
        seed=ns.sim_seed,
        time_scale=ns.sim_time_scale,
        ttft_base_s=ns.sim_ttft_base,
        prefill_per_token_s=ns.sim_prefill_per_token,
        itl_s=ns.sim_itl,
        batch_slowdown=ns.sim_batch_slowdown,
        startup_delay_s=ns.sim_startup_delay,
        quant_noise=ns.sim_quant_noise,
        lora_noise=ns.sim_lora_noise,
        reference_model=ns.sim_reference_model,
        kv_capacity_tokens=ns.sim_kv_capacity_tokens,
        metrics_generation=ns.sim_metrics_generation,
        error_rate=ns.sim_error_rate,
        error_status=ns.sim_error_status,
        retry_after_s=ns.sim_retry_after,
        slow_rate=ns.sim_slow_rate,
        slow_delay_s=ns.sim_slow_delay,
        disconnect_rate=ns.sim_disconnect_rate,
        disconnect_after_chunks=ns.sim_disconnect_after_chunks,
        exit_after=ns.sim_exit_after,
        judge_malformed_rate=ns.sim_judge_malformed_rate,
        judge_fence_rate=ns.sim_judge_fence_rate,
        judge_prose_rate=ns.sim_judge_prose_rate,
        unknown_args=list(unknown),
    )
