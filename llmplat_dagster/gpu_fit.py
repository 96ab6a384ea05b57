"""Does a variant fit its GPU? vLLM 0.10's start-up memory accounting, with the numbers written down.

Sources: vllm/v1/worker/gpu_worker.py (`determine_available_memory`: requested = total x gpu_memory_utilization;
KV cache = requested - weights - activation peak - non-torch growth; the memory snapshot is taken after the
CUDA context exists, and CUDA graphs are captured after the KV cache is allocated); the per-GPU overheads and
their sources are in catalog.yaml (`node:`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmplat_dagster.catalog import Catalog, VariantSpec

GIB = 1024**3

# vLLM's default step size when a variant sets none: the OpenAI server on a GPU under 70 GiB
# (vllm/engine/arg_utils.py, EngineArgs._set_default_args_v1, vLLM 0.10).
VLLM_DEFAULT_BATCHED_TOKENS = 2048


@dataclass(frozen=True)
class MemoryFit:
    """vLLM 0.10's start-up accounting for one variant, in bytes (vllm/v1/worker/gpu_worker.py).

    `requested` = total x gpu_memory_utilization is all vLLM may use after the CUDA context exists; the KV cache
    gets what the weights (with LoRA slots), the activation peak of one profiling step and non-torch growth
    leave of it. The CUDA context (created before the snapshot) and the CUDA graphs (captured after the KV cache
    is allocated, unless enforce_eager) are not in `requested`: they must fit in the rest of the GPU.
    """

    variant: str
    total: float
    requested: float
    weights: float
    activation: float
    non_torch: float
    kv_needed: float
    outside_needed: float

    @property
    def kv_room(self) -> float:
        return self.requested - self.weights - self.activation - self.non_torch

    @property
    def outside_room(self) -> float:
        return self.total - self.requested

    @property
    def fits(self) -> bool:
        return self.kv_room >= self.kv_needed and self.outside_room >= self.outside_needed


def memory_fit(catalog: Catalog, v: VariantSpec) -> MemoryFit:
    arch, node = catalog.architectures[v.architecture], catalog.node
    tokens = v.max_num_batched_tokens or VLLM_DEFAULT_BATCHED_TOKENS
    lora = arch.lora_bytes(v.lora.max_loras, v.lora.max_lora_rank, v.dtype) if v.lora.enabled else 0.0
    total = node.gpu_memory_gib * GIB
    return MemoryFit(
        variant=v.name,
        total=total,
        requested=total * v.gpu_memory_utilization,
        weights=arch.weight_bytes(v.quantization) + lora,
        activation=arch.activation_bytes(tokens, v.max_num_seqs, v.dtype),
        non_torch=node.non_torch_gib * GIB,
        kv_needed=arch.kv_bytes_per_token(v.dtype) * v.max_model_len * v.max_num_seqs,
        outside_needed=(node.cuda_context_gib + (0 if v.enforce_eager else node.cuda_graph_gib)) * GIB,
    )


def memory_fit_errors(catalog: Catalog) -> list[str]:
    """Every promised sequence needs its KV cache: max_num_seqs x max_model_len must fit what vLLM leaves.

    A variant that fails here either refuses to start or serves fewer concurrent sequences than the catalog
    promises (preempting the rest); the design document's 8192 x 64 FP16 example is the extreme case.
    """
    errors = []
    g = lambda b: f"{b / GIB:.2f} GiB"  # noqa: E731
    for v in catalog.variants:
        fit = memory_fit(catalog, v)
        gpu = f"{catalog.node.gpu} {catalog.node.gpu_memory_gib:g} GiB"
        if fit.kv_room < fit.kv_needed:
            errors.append(
                f"variant {v.name!r}: field 'max_num_seqs': KV cache for max_num_seqs={v.max_num_seqs} x "
                f"max_model_len={v.max_model_len} needs {g(fit.kv_needed)}, but {gpu} x gpu_memory_utilization="
                f"{v.gpu_memory_utilization:g} = {g(fit.requested)} minus weights {g(fit.weights)}, activation "
                f"peak {g(fit.activation)} and non-torch {g(fit.non_torch)} leaves {g(fit.kv_room)}; lower "
                "max_num_seqs, max_model_len or max_num_batched_tokens"
            )
        if fit.outside_room < fit.outside_needed:
            graphs = "" if v.enforce_eager else f" + CUDA graphs {catalog.node.cuda_graph_gib:g} GiB"
            errors.append(
                f"variant {v.name!r}: field 'gpu_memory_utilization': {v.gpu_memory_utilization:g} leaves "
                f"{g(fit.outside_room)} of the {gpu} outside vLLM's budget, but the CUDA context "
                f"{catalog.node.cuda_context_gib:g} GiB{graphs} need {g(fit.outside_needed)}; lower it"
                + ("" if v.enforce_eager else " or set enforce_eager: true")
            )
    return errors
