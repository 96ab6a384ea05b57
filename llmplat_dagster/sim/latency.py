"""Latency model: per-variant defaults that resemble Mistral-7B on one T4, scaled for tests.

TTFT = queue wait + base + prefill_per_token * prompt_tokens; each later token takes
ITL * (1 + batch_slowdown * (running - 1)). AWQ 4-bit decodes faster than FP16 on a T4 (memory bound:
~4 GB vs ~14.5 GB of weights to read per step) but prefills slower (dequantisation), hence the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplat_dagster.sim.config import SimConfig

# (base TTFT s, prefill s/token, ITL s/token) at batch 1, unscaled.
_DEFAULTS = {"awq": (0.06, 0.0005, 0.025), "fp16": (0.05, 0.0004, 0.045)}
_T4_BYTES = 16e9
_WEIGHT_BYTES = {"awq": 4.2e9, "fp16": 14.5e9}
_KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # layers x kv heads x head dim x (k, v) x fp16


@dataclass(frozen=True)
class LatencyModel:
    ttft_base_s: float
    prefill_per_token_s: float
    itl_s: float
    batch_slowdown: float
    time_scale: float

    def prefill_s(self, prompt_tokens: int) -> float:
        return (self.ttft_base_s + self.prefill_per_token_s * prompt_tokens) * self.time_scale

    def itl_at(self, running: int, lora: bool = False) -> float:
        """Seconds for one decode step with ``running`` sequences (LoRA adds ~10% per step)."""
        slow = 1.0 + self.batch_slowdown * max(0, running - 1)
        return self.itl_s * slow * (1.1 if lora else 1.0) * self.time_scale


def family(config: SimConfig) -> str:
    return "awq" if config.is_quantized else "fp16"


def latency_model(config: SimConfig) -> LatencyModel:
    base, prefill, itl = _DEFAULTS[family(config)]
    return LatencyModel(
        ttft_base_s=base if config.ttft_base_s is None else config.ttft_base_s,
        prefill_per_token_s=prefill if config.prefill_per_token_s is None else config.prefill_per_token_s,
        itl_s=itl if config.itl_s is None else config.itl_s,
        batch_slowdown=config.batch_slowdown,
        time_scale=config.time_scale,
    )


def kv_capacity_tokens(config: SimConfig) -> int:
    """KV-cache tokens left on a T4 after weights and ~1 GB activations, at least 2 full sequences."""
    if config.kv_capacity_tokens:
        return config.kv_capacity_tokens
    free = _T4_BYTES * config.gpu_memory_utilization - _WEIGHT_BYTES[family(config)] - 1e9
    return max(int(free // _KV_BYTES_PER_TOKEN), 2 * config.max_model_len)
