"""Promptset prompts as serving requests: one place for canary, comparison, load sweeps and autoscaling."""

from __future__ import annotations

from llmplat_dagster.catalog import VariantSpec
from llmplat_dagster.evaluation.promptsets import fold_system_message
from llmplat_dagster.serving.client import ServingRequest


def request_model(variant: VariantSpec) -> str:
    """The model name requests to a variant carry: a LoRA variant is evaluated through its (first) adapter, which
    vLLM serves under its ``--lora-modules`` name; any other variant under its served name."""
    if variant.lora.enabled and variant.lora.adapters:
        return variant.lora.adapters[0].name
    return variant.served_name


def serving_requests(prompts, *, seed: int | None = 0, top_logprobs: int | None = None) -> list[ServingRequest]:
    """Promptset prompts as requests; a leading system message is folded in (Mistral's template rejects it)."""
    return [
        ServingRequest(
            prompt_id=p.id,
            messages=tuple(fold_system_message([dict(m) for m in p.messages])),
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            seed=seed,
            top_logprobs=top_logprobs,
        )
        for p in prompts
    ]
