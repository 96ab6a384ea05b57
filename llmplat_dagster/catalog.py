"""The variant catalog: typed, validated when loaded, the single source of truth.

Everything downstream (manifests, simulator fleet, assets, sensors) reads `Catalog`; nothing re-states a
model id, a flag or a resource size. A bad catalog fails with one message that names the file and line,
the variant and the field, because a platform engineer edits YAML, not Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from llmplat_dagster import yamlio
from llmplat_dagster.capacity import Placement, Pool, capacity_problems
from llmplat_dagster.gpu_fit import GIB, MemoryFit, memory_fit, memory_fit_errors
from llmplat_dagster.overlays import (
    KedaSpec,
    NodePool,
    OffHours,
    Overlay,
    PrometheusSpec,
    ReplicaOverride,
    Strict,
)
from llmplat_dagster.quantity import parse_quantity
from llmplat_dagster.vllm_flags import check_extra_arg, conflicting

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # always fullmatch: `$` would accept "name\n"
SHA = re.compile(r"[0-9a-f]{40}")
LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")  # Kubernetes label values, <= 63
# What vLLM's --served-model-name and a PromQL label matcher both take as written (no quotes, braces, spaces).
SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]*")
HF_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
# A container image reference (distribution/reference's grammar, simplified): [host[:port]/]path[:tag][@sha256:...]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"(?:{_COMPONENT}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[a-f0-9]{64})?"
)

# vLLM `--quantization` values this platform knows how to size and serve. "none" renders no flag.
QUANTIZATIONS: dict[str, float] = {
    # effective bytes per parameter of the quantized linear layers (4-bit + group scales/zeros)
    "none": 2.0,
    "awq": 0.5 * 1.0625,
    "gptq": 0.5 * 1.0625,
    "fp8": 1.0,
}
DTYPE_BYTES = {"half": 2, "float16": 2, "bfloat16": 2, "float32": 4, "auto": 2}


class CatalogError(ValueError):
    """A catalog that cannot be served; the message names file:line, variant and field."""


def dns1123_label(value: str) -> str:
    """Object and namespace names: what Kubernetes accepts as a DNS-1123 label."""
    if len(value) > 63:
        raise ValueError(f"{value!r} is {len(value)} characters; a DNS-1123 label has at most 63")
    if not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    return value


_Strict = Strict


def team_name(value: str) -> str:
    """A team: the label lab.team on its objects and the owner (`team:<name>`) of its assets in Dagster."""
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"team {value!r} becomes the label lab.team, so it must be a Kubernetes label value: at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


def _quantity_field(value: Any) -> str:
    parse_quantity(value)
    return value


class NodeSpec(_Strict):
    """The GPU node type, and the GPU memory vLLM cannot give to weights or KV cache (see `memory_fit`)."""

    instance_type: str
    gpu: str
    gpu_memory_gib: float = Field(gt=0)  # what CUDA reports (torch total_memory), not the marketing size
    allocatable_cpu: str
    allocatable_memory: str
    cuda_context_gib: float = Field(default=0.5, ge=0)  # created before vLLM's memory snapshot
    cuda_graph_gib: float = Field(default=0.3, ge=0)  # captured after the KV cache is allocated
    non_torch_gib: float = Field(default=0.05, ge=0)  # cuBLAS/NCCL buffers growing during the profile run

    _quantities = field_validator("allocatable_cpu", "allocatable_memory", mode="before")(_quantity_field)


class Architecture(_Strict):
    params_billion: float = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(default=32000, gt=0)
    hidden_size: int = Field(default=4096, gt=0)
    intermediate_size: int = Field(default=14336, gt=0)

    def kv_bytes_per_token(self, dtype: str) -> int:
        """K and V, every layer, every KV head (grouped-query attention keeps this small)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def weight_bytes(self, quantization: str) -> float:
        """Embeddings and lm_head stay FP16 in AWQ/GPTQ checkpoints; the linear layers shrink."""
        params = self.params_billion * 1e9
        embed = 2 * self.vocab_size * self.hidden_size
        return (params - embed) * QUANTIZATIONS[quantization] + embed * 2.0

    def activation_bytes(self, tokens: int, seqs: int, dtype: str) -> float:
        """Peak of one profiling step: per token the residual, attention and MLP (gate, up, act) buffers of one
        layer, plus float32 logits and probabilities for each sequence's sampled token."""
        per_token = (4 * self.hidden_size + 3 * self.intermediate_size) * DTYPE_BYTES[dtype]
        return tokens * per_token + seqs * self.vocab_size * 4 * 2

    def lora_bytes(self, slots: int, rank: int, dtype: str) -> float:
        """vLLM preallocates A and B for every LoRA slot on q, k, v, o, gate, up and down of every layer."""
        h, kv, i = self.hidden_size, self.num_kv_heads * self.head_dim, self.intermediate_size
        per_layer = 9 * h + 2 * kv + 3 * i  # sum of (in + out) over the seven projections
        return slots * rank * self.num_layers * per_layer * DTYPE_BYTES[dtype]


class Resources(_Strict):
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpu: int = Field(default=1, ge=1)

    _quantities = field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit", mode="before")(
        _quantity_field
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        """The API server rejects a request above its limit; say so at load time, naming both fields."""
        for what in ("cpu", "memory"):
            request, limit = getattr(self, f"{what}_request"), getattr(self, f"{what}_limit")
            if parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"{what}_request {request} is above {what}_limit {limit}")
        return self


class LoraAdapter(_Strict):
    name: str
    repo: str
    revision: str = "main"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(f"adapter name {value!r} must be letters, digits, '.', '_' or '-'")
        return value


class LoraSettings(_Strict):
    enabled: bool = False
    max_loras: int = Field(default=4, ge=1)
    max_lora_rank: int = Field(default=16, ge=1)
    adapters: tuple[LoraAdapter, ...] = ()

    @model_validator(mode="after")
    def _fits(self) -> LoraSettings:
        if len(self.adapters) > self.max_loras:
            raise ValueError(f"{len(self.adapters)} adapters exceed max_loras={self.max_loras}")
        return self


class VariantSpec(_Strict):
    """One vLLM server: what it serves, how vLLM is told to serve it, what it may use."""

    name: str
    team: str
    purpose: str = ""
    model_id: str
    revision: str = "main"
    quantization: str = "none"
    dtype: Literal["half", "float16", "bfloat16", "float32", "auto"] = "half"
    max_model_len: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    gpu_memory_utilization: float = Field(gt=0, le=1)
    lora: LoraSettings = LoraSettings()
    served_model_name: str | None = None
    image: str
    architecture: str
    resources: Resources
    cache_size: str
    gated: bool = False
    # vLLM knobs: eager mode skips CUDA graphs (less memory, slower decode); None leaves vLLM's default.
    enforce_eager: bool = False
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    extra_args: tuple[Annotated[str, AfterValidator(check_extra_arg)], ...] = ()
    # The alert rule "TTFT p95 over the SLO" fires above this (seconds, over 5 minutes, for 10 minutes).
    ttft_p95_slo_s: float = Field(default=2.0, gt=0)

    _dns1123 = field_validator("name")(lambda value: dns1123_label(value))

    _team = field_validator("team")(lambda value: team_name(value))

    @field_validator("served_model_name")
    @classmethod
    def _served_name(cls, value: str | None) -> str | None:
        if value is not None and not SERVED_NAME.fullmatch(value):
            raise ValueError(
                f"served_model_name {value!r} must be letters, digits, '.', '_', '/', ':' or '-' (it is a vLLM flag "
                "and a label value in the autoscaler's PromQL query, where a quote would change the query)"
            )
        return value

    @field_validator("model_id")
    @classmethod
    def _hf_repo(cls, value: str) -> str:
        if not HF_REPO.fullmatch(value):
            raise ValueError(f"model_id {value!r} is not a Hugging Face repo id (ORG/NAME)")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if not REVISION.fullmatch(value):
            raise ValueError(f"revision {value!r} must be a branch, tag or commit sha (no spaces or quotes)")
        return value

    _cache_size = field_validator("cache_size", mode="before")(_quantity_field)

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, value: str) -> str:
        if value not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {value!r}; expected one of {sorted(QUANTIZATIONS)}")
        return value

    @field_validator("image")
    @classmethod
    def _pinned_image(cls, value: str) -> str:
        if not IMAGE.fullmatch(value):
            raise ValueError(f"image {value!r} is not a container image reference (REPOSITORY[:TAG][@sha256:DIGEST])")
        tag = value.split("@", 1)[0].rsplit("/", 1)[-1]
        if "@sha256:" not in value and (":" not in tag or tag.endswith(":latest")):
            raise ValueError(f"image {value!r} must be pinned to a tag other than latest or a digest")
        return value

    @field_validator("extra_args")
    @classmethod
    def _no_conflicts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = conflicting(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _batch_holds_the_sequences(self) -> VariantSpec:
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens {self.max_num_batched_tokens} is below max_num_seqs {self.max_num_seqs}; "
                "vLLM refuses to start"
            )
        return self

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.name

    @property
    def served_names(self) -> list[str]:
        """What vLLM answers to: the served name first (metrics carry it), then the Hugging Face id as an alias."""
        return list(dict.fromkeys([self.served_name, self.model_id]))

    @property
    def pinned(self) -> bool:
        return bool(SHA.fullmatch(self.revision))

    @property
    def group_name(self) -> str:
        """Dagster group names are Python identifiers."""
        return self.name.replace("-", "_")


class AbPair(_Strict):
    control: str
    treatment: str


class EvaluationRoles(_Strict):
    """Who plays which part in the nightly evaluation (`evaluation:` in catalog.yaml).

    The graph (comparison inputs, one promotion gate per candidate, the judge's readiness) and every run read
    these same names, so adding a candidate variant needs no code change.
    """

    reference: str
    candidates: tuple[str, ...] = Field(min_length=1)
    judge: str
    ab: AbPair | None = None
    # Candidates whose promotion gate reports (WARN) instead of blocking (ERROR): compared, gated and recorded
    # like the others, but their failure stops nothing downstream (e.g. a finetune promoted by the A/B).
    advisory_gates: tuple[str, ...] = ()
    team: str = "eval"  # owns the evaluation assets (comparison, A/B, trend, promotion record) in Dagster

    _team = field_validator("team")(lambda value: team_name(value))

    @property
    def compared(self) -> list[str]:
        """The reference first, then the candidates: the variants whose responses are collected."""
        return [self.reference, *self.candidates]

    @property
    def variants(self) -> set[str]:
        """Every variant the evaluation talks to."""
        return {*self.compared, self.judge}


class Catalog(_Strict):
    namespace: str = "llm-baseline"
    node: NodeSpec
    node_pools: dict[str, NodePool]
    overlays: dict[str, Overlay]
    architectures: dict[str, Architecture]
    variants: tuple[VariantSpec, ...]
    evaluation: EvaluationRoles | None = None
    platform_team: str = "platform"  # owns what every variant shares (namespace, monitoring objects)

    _namespace = field_validator("namespace")(lambda value: dns1123_label(value))
    _platform_team = field_validator("platform_team")(lambda value: team_name(value))

    @model_validator(mode="after")
    def _name_overlays(self) -> Catalog:
        for name, ov in self.overlays.items():
            object.__setattr__(ov, "name", name)
        return self

    def overlay(self, name: str, variant: str | None = None) -> Overlay:
        try:
            ov = self.overlays[name]
        except KeyError:
            raise ValueError(f"unknown overlay {name!r}; the catalog has {sorted(self.overlays)}") from None
        return ov.for_variant(variant) if variant else ov

    @cached_property
    def by_name(self) -> dict[str, VariantSpec]:
        return {v.name: v for v in self.variants}

    def variant(self, name: str) -> VariantSpec:
        try:
            return self.by_name[name]
        except KeyError:
            raise CatalogError(f"unknown variant {name!r}; the catalog has {sorted(self.by_name)}") from None

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def with_overrides(
        self,
        revisions: Mapping[str, str] | None = None,
        image: str | None = None,
        adapter_revisions: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Catalog:
        """Pin new model or LoRA adapter revisions (a sensor saw a new sha) or another vLLM image, re-validated."""
        data = self.model_dump(mode="python")
        for name in [*(revisions or {}), *(adapter_revisions or {})]:
            self.variant(name)
        for variant in data["variants"]:
            if revisions and variant["name"] in revisions:
                variant["revision"] = revisions[variant["name"]]
            if image:
                variant["image"] = image
            pins = dict((adapter_revisions or {}).get(variant["name"], {}))
            known = {a["name"] for a in variant["lora"]["adapters"]}
            if set(pins) - known:
                missing = sorted(set(pins) - known)
                raise CatalogError(
                    f"variant {variant['name']!r} has no LoRA adapter(s) {missing}; it has {sorted(known)}"
                )
            for adapter in variant["lora"]["adapters"]:
                adapter["revision"] = pins.get(adapter["name"], adapter["revision"])
        return _validate(data, source="<overrides>", root=None)


def resource_fit_errors(catalog: Catalog) -> list[str]:
    """Requests above the node's allocatable never schedule; say so before the cluster does."""
    cpu = parse_quantity(catalog.node.allocatable_cpu)
    mem = parse_quantity(catalog.node.allocatable_memory)
    errors = []
    for v in catalog.variants:
        for field, have, request in (
            ("cpu_request", cpu, v.resources.cpu_request),
            ("memory_request", mem, v.resources.memory_request),
        ):
            if parse_quantity(request) > have:
                errors.append(
                    f"variant {v.name!r}: field 'resources.{field}' {request} exceeds the "
                    f"{catalog.node.instance_type} allocatable {have:g}"
                )
    return errors


def placements(catalog: Catalog, overlay: str) -> list[Placement]:
    ov = catalog.overlay(overlay)
    low = 0 if ov.off_hours else None
    return [
        Placement(v.name, low if low is not None else o.replicas, o.max_replicas)
        for v in catalog.variants
        for o in [ov.for_variant(v.name)]
    ]


def overlay_errors(catalog: Catalog, source: str, root: yaml.Node | None) -> list[str]:
    """Each overlay names a known pool and variants, its claims can follow its replicas, and it fits its pool."""

    def at(*loc: Any) -> str:
        line = _line_of(root, loc)
        return f"{source}:{line}" if line else source

    errors = []
    for name, ov in catalog.overlays.items():
        if ov.node_pool not in catalog.node_pools:
            errors.append(
                f"{at('overlays', name, 'node_pool')}: overlay {name!r}: field 'node_pool': unknown "
                f"{ov.node_pool!r}; node_pools has {sorted(catalog.node_pools)}"
            )
            continue
        for variant in ov.variants:
            if variant not in catalog.by_name:
                errors.append(
                    f"{at('overlays', name, 'variants', variant)}: overlay {name!r}: field 'variants': unknown "
                    f"variant {variant!r}; the catalog has {catalog.names}"
                )
        for v in catalog.variants:
            o = ov.for_variant(v.name)
            if o.cache_access_mode == "ReadWriteOnce" and o.max_replicas > 1:
                errors.append(
                    f"{at('overlays', name, 'cache_access_mode')}: overlay {name!r}: variant {v.name!r}: field "
                    f"'cache_access_mode': ReadWriteOnce mounts on one node, but max_replicas {o.max_replicas} puts "
                    "replicas on different nodes (anti-affinity); use ReadWriteMany or max_replicas 1"
                )
        pool = catalog.node_pools[ov.node_pool]
        spec = Pool(ov.node_pool, pool.min_nodes, pool.max_nodes, pool.autoscaler)
        for field, message in capacity_problems(name, spec, placements(catalog, name)):
            errors.append(f"{at('overlays', name, field)}: {message}")
    return errors


def _merge_defaults(data: dict[str, Any]) -> dict[str, Any]:
    defaults = data.pop("defaults", {}) or {}
    merged = []
    for raw in data.get("variants") or []:
        if not isinstance(raw, dict):
            merged.append(raw)
            continue
        variant = {**defaults, **raw}
        if isinstance(defaults.get("resources"), dict) and isinstance(raw.get("resources"), dict):
            variant["resources"] = {**defaults["resources"], **raw["resources"]}
        merged.append(variant)
    data["variants"] = merged
    return data


def _walk(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[int | None, bool]:
    """Follow a pydantic error location through the composed YAML tree: (deepest line, reached the end)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                return line, False
            node = found[1]
            line = found[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line, False
    return line, True


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line a user must edit; a variant field inherited from `defaults:` points at the default."""
    line, complete = _walk(root, loc)
    if not complete and len(loc) > 2 and loc[0] == "variants":
        default_line, found = _walk(root, ("defaults", *loc[2:]))
        if found:
            return default_line
    return line


def _describe(error: dict[str, Any], data: dict[str, Any], source: str, root: yaml.Node | None) -> str:
    loc = tuple(error["loc"])
    where = source
    line = _line_of(root, loc)
    if line is not None:
        where = f"{source}:{line}"
    subject = "catalog"
    field = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "variants" and isinstance(loc[1], int):
        variants = data.get("variants") or []
        name = variants[loc[1]].get("name") if loc[1] < len(variants) else None
        subject = f"variant {name!r}" if name else f"variant #{loc[1] + 1}"
        field = ".".join(str(p) for p in loc[2:]) or "(entry)"
    elif len(loc) >= 2 and loc[0] in ("overlays", "node_pools"):
        subject = f"{'overlay' if loc[0] == 'overlays' else 'node pool'} {loc[1]!r}"
        field = ".".join(str(p) for p in loc[2:]) or "(entry)"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {subject}: field {field!r}: {message}"


def _role_errors(catalog: Catalog, source: str, root: yaml.Node | None) -> list[str]:
    """Roles must name variants of this catalog and make sense together; each error names file:line and field."""
    roles = catalog.evaluation
    if roles is None:
        return []
    names = set(catalog.names)
    named: list[tuple[tuple[Any, ...], str]] = [(("reference",), roles.reference), (("judge",), roles.judge)]
    named += [(("candidates", i), c) for i, c in enumerate(roles.candidates)]
    if roles.ab is not None:
        named += [(("ab", "control"), roles.ab.control), (("ab", "treatment"), roles.ab.treatment)]
    problems: list[tuple[tuple[Any, ...], str]] = []
    for loc, name in named:
        if name not in names:
            problems.append((loc, f"unknown variant {name!r}; the catalog has {catalog.names}"))
    for i, c in enumerate(roles.candidates):
        if c == roles.reference:
            problems.append((("candidates", i), f"{c!r} is the reference; a variant is not compared with itself"))
        elif c == roles.judge:
            problems.append((("candidates", i), f"{c!r} is the judge; the judge must not score its own answers"))
        elif c in roles.candidates[:i]:
            problems.append((("candidates", i), f"{c!r} is listed twice"))
    if roles.judge == roles.reference:
        problems.append((("judge",), f"{roles.judge!r} is the reference; the judge must not score its own answers"))
    for i, name in enumerate(roles.advisory_gates):
        if name not in roles.candidates:
            problems.append((("advisory_gates", i), f"{name!r} is not a candidate, so it has no promotion gate"))
    if roles.ab is not None:
        for side in ("control", "treatment"):
            name = getattr(roles.ab, side)
            if name in names and name not in roles.compared:
                problems.append(
                    (("ab", side), f"{name!r} is neither the reference nor a candidate (the A/B reads their answers)")
                )
        if roles.ab.control == roles.ab.treatment:
            problems.append((("ab", "treatment"), f"{roles.ab.treatment!r} is also the control"))
    lines = []
    for loc, message in problems:
        line = _line_of(root, ("evaluation", *loc))
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
        lines.append(f"{source}:{line}: evaluation: field {field!r}: {message}" if line else f"{source}: {message}")
    return lines


def _validate(data: dict[str, Any], source: str, root: yaml.Node | None) -> Catalog:
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, data, source, root) for e in exc.errors()]
        raise CatalogError("invalid variant catalog:\n  " + "\n  ".join(lines)) from None
    problems = [] if catalog.variants else [f"{source}: catalog: field 'variants': no variants to serve"]
    seen: dict[str, int] = {}
    for i, v in enumerate(catalog.variants):
        if v.name in seen:
            line = _line_of(root, ("variants", i, "name"))
            at = f"{source}:{line}" if line else source
            problems.append(
                f"{at}: variant {v.name!r}: field 'name': duplicate name (also variant #{seen[v.name] + 1})"
            )
        seen.setdefault(v.name, i)
        if v.architecture not in catalog.architectures:
            problems.append(f"{source}: variant {v.name!r}: field 'architecture': unknown {v.architecture!r}")
    problems += _role_errors(catalog, source, root)
    if not problems:
        problems += [f"{source}: {e}" for e in memory_fit_errors(catalog) + resource_fit_errors(catalog)]
        problems += overlay_errors(catalog, source, root)
    if problems:
        raise CatalogError("invalid variant catalog:\n  " + "\n  ".join(problems))
    return catalog


def default_catalog_path() -> Path:
    return Path(str(resources.files("llmplat_dagster").joinpath("catalog.yaml")))


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    try:
        root = yaml.compose(text)
        data = yamlio.load(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise CatalogError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except yamlio.YamlError as exc:
        raise CatalogError(f"invalid variant catalog: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the catalog must be a mapping with 'variants'")
    return _validate(_merge_defaults(data), source, root)


def load_catalog(
    path: str | Path | None = None,
    revisions: Mapping[str, str] | None = None,
    image: str | None = None,
) -> Catalog:
    """Load and validate a catalog file (the packaged one by default), then apply overrides."""
    path = Path(path) if path else default_catalog_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None
    catalog = parse_catalog(text, source=str(path))
    if revisions or image:
        catalog = catalog.with_overrides(revisions, image)
    return catalog


__all__ = [
    "GIB",
    "Catalog",
    "CatalogError",
    "KedaSpec",
    "MemoryFit",
    "NodePool",
    "OffHours",
    "Overlay",
    "PrometheusSpec",
    "ReplicaOverride",
    "VariantSpec",
    "load_catalog",
    "memory_fit",
    "memory_fit_errors",
    "parse_catalog",
]
