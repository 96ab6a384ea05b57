"""Which `vllm serve` flags a catalog may add on top of the ones the renderer writes, and which it may not.

The renderer owns every flag a catalog field already controls (a second `--max-model-len` would silently win
over the fit check). Flags that run foreign code, put secrets on the command line, read local files for
requests or switch off the metrics the autoscaler reads are refused with the reason. Anything else must be on
the allow-list below (vLLM 0.10 spellings), so a typo fails when the catalog loads, not when the pod starts.
The simulator accepts the same list (sim/config.py), because it runs the rendered container args unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

# flag -> the catalog field that sets it (or why nobody may)
RENDERER_FLAGS: dict[str, str] = {
    "--model": "model_id",
    "--revision": "revision",
    "--served-model-name": "served_model_name (the Hugging Face id is added as an alias)",
    "--dtype": "dtype",
    "--max-model-len": "max_model_len",
    "--max-num-seqs": "max_num_seqs",
    "--max-num-batched-tokens": "max_num_batched_tokens",
    "--gpu-memory-utilization": "gpu_memory_utilization",
    "--quantization": "quantization",
    "-q": "quantization",
    "--enforce-eager": "enforce_eager",
    "--enable-lora": "lora.enabled",
    "--max-loras": "lora.max_loras",
    "--max-lora-rank": "lora.max_lora_rank",
    "--lora-modules": "lora.adapters",
    "--otlp-traces-endpoint": "overlays.<overlay>.otlp_traces_endpoint",
    "--host": "(fixed: 0.0.0.0)",
    "--port": "(fixed: the container port)",
}

REFUSED: dict[str, str] = {
    "--trust-remote-code": "it runs Python code from the model repository inside the server",
    "--api-key": "a secret on the command line is readable in the pod spec; put an auth proxy in front",
    "--load-format": "formats other than safetensors (pt) unpickle, i.e. run, code from the checkpoint",
    "--download-dir": "it moves the weights off the model-cache volume (every restart downloads again)",
    "--tensor-parallel-size": "each model server has exactly one GPU",
    "-tp": "each model server has exactly one GPU",
    "--pipeline-parallel-size": "each model server has exactly one GPU",
    "--middleware": "it imports arbitrary Python into the API server",
    "--allowed-local-media-path": "it lets requests read files from the pod",
    "--allow-credentials": "CORS belongs in front of the server, not in it",
    "--allowed-origins": "CORS belongs in front of the server, not in it",
    "--disable-log-stats": "it turns off the /metrics series KEDA, the dashboards and the alerts read",
    "--device": "the GPU comes from the device plugin",
}


@dataclass(frozen=True)
class ExtraFlag:
    """One allowed flag: `kind` is "bool" (no value), "int", "float" or "choice"."""

    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


EXTRA_FLAGS: dict[str, ExtraFlag] = {
    "--enable-prefix-caching": ExtraFlag("bool"),
    "--no-enable-prefix-caching": ExtraFlag("bool"),
    "--enable-chunked-prefill": ExtraFlag("bool"),
    "--no-enable-chunked-prefill": ExtraFlag("bool"),
    "--enable-auto-tool-choice": ExtraFlag("bool"),
    "--disable-fastapi-docs": ExtraFlag("bool"),
    "--kv-cache-dtype": ExtraFlag("choice", ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")),
    "--block-size": ExtraFlag("choice", ("8", "16", "32")),
    "--tokenizer-mode": ExtraFlag("choice", ("auto", "slow", "mistral")),
    "--scheduling-policy": ExtraFlag("choice", ("fcfs", "priority")),
    "--generation-config": ExtraFlag("choice", ("auto", "vllm")),
    "--tool-call-parser": ExtraFlag("choice", ("mistral", "hermes", "llama3_json")),
    "--uvicorn-log-level": ExtraFlag("choice", ("critical", "error", "warning", "info", "debug", "trace")),
    "--swap-space": ExtraFlag("float", minimum=0),
    "--cpu-offload-gb": ExtraFlag("float", minimum=0),
    "--seed": ExtraFlag("int", minimum=0),
    "--max-logprobs": ExtraFlag("int", minimum=0),
    "--max-log-len": ExtraFlag("int", minimum=0),
    "--max-seq-len-to-capture": ExtraFlag("int", minimum=1),
}
# A flag and its --no- twin cannot both be given.
OPPOSITES = {
    "--enable-prefix-caching": "--no-enable-prefix-caching",
    "--enable-chunked-prefill": "--no-enable-chunked-prefill",
}


def flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def check_extra_arg(arg: str) -> str:
    """`--flag` or `--flag=value`, allowed and well-typed; raises ValueError saying what to do instead."""
    name, sep, value = arg.partition("=")
    if not name.startswith("-") or " " in arg.strip():
        raise ValueError(f"{arg!r} is not one vLLM flag; write each as '--flag' or '--flag=value'")
    if name in RENDERER_FLAGS:
        raise ValueError(f"{name} is set by the renderer; use the catalog field {RENDERER_FLAGS[name]}")
    if name in REFUSED:
        raise ValueError(f"{name} is refused: {REFUSED[name]}")
    spec = EXTRA_FLAGS.get(name)
    if spec is None:
        raise ValueError(f"{name} is not an allowed vLLM flag; allowed: {', '.join(sorted(EXTRA_FLAGS))}")
    if spec.kind == "bool":
        if sep:
            raise ValueError(f"{name} takes no value")
        return arg
    if not sep or not value:
        raise ValueError(f"{name} needs a value: '{name}=VALUE'")
    if spec.kind == "choice" and value not in spec.choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(spec.choices)}")
    if spec.kind in ("int", "float"):
        try:
            number = int(value) if spec.kind == "int" else float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not {'an integer' if spec.kind == 'int' else 'a number'}") from None
        if spec.minimum is not None and number < spec.minimum:
            raise ValueError(f"{name}={value} is below {spec.minimum:g}")
    return arg


def conflicting(args: list[str] | tuple[str, ...]) -> list[str]:
    """Messages for flags given twice or together with their --no- twin."""
    names = [flag_name(a) for a in args]
    problems = [f"{n} is given {names.count(n)} times" for n in sorted(set(names)) if names.count(n) > 1]
    problems += [f"{a} and {b} contradict each other" for a, b in OPPOSITES.items() if a in names and b in names]
    return problems
