"""Promptsets: JSONL files of chat prompts, loaded from the package, a local path or S3, validated per line.

A promptset is edited by hand and run against servers with small context windows (the FP16 reference has
max_model_len 1024), so a bad line must be caught before a run, with its line number, and every bad line at
once: the user fixes the file in one pass instead of one error per attempt. ``strict`` fails the load;
lenient mode skips bad lines and returns them as ``issues`` for the caller to report.

One line: ``{"id", "messages": [{"role", "content"}...], "max_tokens", "temperature", "tags": [...]}``, and for
task accuracy optionally ``"reference"`` (an ideal answer: the judge's expected answer), ``"rubric"`` (what the judge
checks) and ``"assert"`` (checkable expectations, see ``evaluation.assertions``). A reference must pass its own
assertions and fit ``max_tokens``, so a wrong expectation is caught when the file loads, not blamed on a model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.evaluation.assertions import Assertion, evaluate, parse_assertions
from llmplat_dagster.s3uri import is_s3, parse_s3_uri

PACKAGE = "llmplat_dagster"
PACKAGED_DIR = "promptsets"
ROLES = ("system", "user", "assistant")
FIELDS = ("id", "messages", "max_tokens", "temperature", "tags", "reference", "rubric", "assert")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TEMPERATURE_RANGE = (0.0, 2.0)

# Prompt-token estimate, deliberately on the high side of Mistral's SentencePiece tokenizer (32k vocab):
# a letter run costs one token per 5 letters (common English words are one token; ~1.4 per word on prose),
# every digit is its own token (Llama/Mistral split digits), every punctuation mark and newline one,
# non-ASCII letters one per character (two for CJK and other scripts past U+0800, often byte-fallback),
# plus the chat template: BOS and ``[INST] ... [/INST]`` around each message.
TEMPLATE_TOKENS_PER_MESSAGE = 8
LETTERS_PER_TOKEN = 5
BOS_TOKENS = 1
_PIECE_RE = re.compile(r"[A-Za-z]+|\d|\n|[ \t]{2,}|[^\W\d_]|\S")


class PromptsetError(ValueError):
    """A promptset that cannot be used; the message lists every problem, one per line."""

    def __init__(self, message: str, issues: list[PromptsetIssue] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


@dataclass(frozen=True)
class Prompt:
    """One chat request of a promptset; ``messages`` goes to ``/v1/chat/completions`` unchanged."""

    id: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float = 0.0
    tags: list[str] = field(default_factory=list)
    reference: str | None = None
    rubric: str | None = None
    assertions: tuple[Assertion, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return estimate_prompt_tokens(self.messages)

    @property
    def checkable(self) -> bool:
        """Whether a response to this prompt can be scored right or wrong (it has assertions)."""
        return bool(self.assertions)


@dataclass(frozen=True)
class PromptsetIssue:
    """One bad line, worded for the person editing the file."""

    line: int
    prompt_id: str | None
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.source else f"line {self.line}"
        subject = f" prompt {self.prompt_id!r}:" if self.prompt_id else ""
        return f"{where}:{subject} {self.message}"


@dataclass(frozen=True)
class LoadedPromptset:
    """What a run used: the prompts, the lines skipped, and a version to record with the results.

    ``version`` is the S3 VersionId (or ETag) when the object has one, else the content hash, so results
    can say exactly which promptset produced them and a sensor can tell when it changed.
    """

    name: str
    version: str
    source: str
    prompts: list[Prompt]
    issues: list[PromptsetIssue]
    sha256: str

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.prompts]


def estimate_tokens(text: str) -> int:
    """Cheap, conservative token count of ``text`` for Mistral's tokenizer (see the module constants)."""
    total = 0
    for piece in _PIECE_RE.findall(text):
        if piece[0].isascii() and piece[0].isalpha():
            total += math.ceil(len(piece) / LETTERS_PER_TOKEN)
        elif piece[0] in " \t":
            total += math.ceil(len(piece) / 4)
        elif not piece.isascii():
            total += 1 if ord(piece) < 0x800 else 2
        else:
            total += 1
    return total


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request: message texts plus the chat template around each."""
    texts = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
    return BOS_TOKENS + texts + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def fold_system_message(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge a leading system message into the first user turn.

    The chat template shipped with TheBloke/Mistral-7B-Instruct-v0.2-AWQ rejects the system role (vLLM answers
    400 "Conversation roles must alternate"); newer Mistral templates prepend it to the user turn like this.
    """
    if len(messages) < 2 or messages[0]["role"] != "system":
        return list(messages)
    first = messages[1]
    return [{"role": first["role"], "content": f"{messages[0]['content']}\n\n{first['content']}"}, *messages[2:]]


def packaged_promptsets() -> list[str]:
    """Names of the promptsets shipped with the package (``canary``, ``performance``, ...)."""
    folder = resources.files(PACKAGE).joinpath(PACKAGED_DIR)
    return sorted(p.name.removesuffix(".jsonl") for p in folder.iterdir() if p.name.endswith(".jsonl"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _message_problems(messages: Any) -> list[str]:
    if messages is None:
        return ["missing 'messages'"]
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list of {role, content} objects"]
    problems = []
    roles = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            problems.append(f"message {i} is not an object")
            continue
        role, content = m.get("role"), m.get("content")
        if role is None:
            problems.append(f"message {i} has no 'role'")
        elif role not in ROLES:
            problems.append(f"message {i} has unknown role {role!r}; expected one of {', '.join(ROLES)}")
        if content is None:
            problems.append(f"message {i} has no 'content'")
        elif not isinstance(content, str) or not content.strip():
            problems.append(f"message {i} has empty or non-text 'content'")
        extra = sorted(set(m) - {"role", "content"})
        if extra:
            problems.append(f"message {i} has unknown field(s) {', '.join(map(repr, extra))}")
        roles.append(role)
    if not problems:
        problems += _order_problems(roles)
    return problems


def _order_problems(roles: list[str]) -> list[str]:
    """Mistral's chat template: an optional system message, then user/assistant alternating, ending with user."""
    turns = roles[1:] if roles[0] == "system" else roles
    if "system" in turns:
        return ["a 'system' message may only come first"]
    if not turns:
        return ["'messages' needs a 'user' message after the system message"]
    for i, role in enumerate(turns):
        if role != ("user" if i % 2 == 0 else "assistant"):
            return [f"roles must alternate user/assistant starting with user; got {', '.join(roles)}"]
    if turns[-1] != "user":
        return ["the last message must be from 'user' (the model answers it)"]
    return []


def _line_problems(record: dict[str, Any], max_model_len: int | None, variant: str | None) -> list[str]:
    problems = []
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}; expected {', '.join(FIELDS)}")
    pid = record.get("id")
    if pid is None:
        problems.append("missing 'id'")
    elif not isinstance(pid, str) or not ID_RE.fullmatch(pid):  # fullmatch: `$` alone accepts "id\n"
        problems.append(f"'id' must be a string of letters, digits, '.', '_' or '-'; got {pid!r}")
    messages_ok = not (problems_m := _message_problems(record.get("messages")))
    problems += problems_m
    max_tokens = record.get("max_tokens")
    if max_tokens is None:
        problems.append("missing 'max_tokens'")
    elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        problems.append(f"'max_tokens' must be a positive integer; got {max_tokens!r}")
    elif messages_ok and max_model_len is not None:
        prompt_tokens = estimate_prompt_tokens(record["messages"])
        if prompt_tokens + max_tokens > max_model_len:
            of = f" of {variant}" if variant else ""
            problems.append(
                f"max_tokens {max_tokens} + ~{prompt_tokens} prompt tokens exceed max_model_len {max_model_len}{of}"
            )
    temperature = record.get("temperature", 0.0)
    low, high = TEMPERATURE_RANGE
    if not _is_number(temperature) or not low <= temperature <= high:
        problems.append(f"'temperature' must be a number in [{low:g}, {high:g}]; got {temperature!r}")
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        problems.append(f"'tags' must be a list of non-empty strings; got {tags!r}")
    return problems + _expectation_problems(record)


def _expectation_problems(record: dict[str, Any]) -> list[str]:
    """``reference``, ``rubric`` and ``assert``: well-formed, and the reference passes its own assertions."""
    problems = []
    for name in ("reference", "rubric"):
        value = record.get(name)
        if name in record and not (isinstance(value, str) and value.strip()):
            problems.append(f"'{name}' must be a non-empty string; got {value!r}")
    assertions, found = parse_assertions(record.get("assert"))
    problems += found
    reference = record.get("reference")
    if found or not isinstance(reference, str) or not reference.strip():
        return problems
    outcome = evaluate(assertions, reference)
    if not outcome.passed:
        problems.append("the reference answer fails its own assertion(s): " + "; ".join(outcome.failures))
    max_tokens = record.get("max_tokens")
    needed = estimate_tokens(reference)
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and needed > max_tokens:
        problems.append(f"the reference answer needs ~{needed} tokens, more than max_tokens {max_tokens}")
    return problems


def parse_promptset(
    text: str, source: str, *, max_model_len: int | None = None, variant: str | None = None
) -> tuple[list[Prompt], list[PromptsetIssue]]:
    """Every valid prompt and every bad line (1-based numbers); blank lines are ignored."""
    prompts: list[Prompt] = []
    issues: list[PromptsetIssue] = []
    first_line: dict[str, int] = {}

    def bad(line: int, pid: str | None, message: str) -> None:
        issues.append(PromptsetIssue(line, pid, message, source))

    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad(number, None, f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(record, dict):
            bad(number, None, f"expected a JSON object, got {type(record).__name__}")
            continue
        pid = record.get("id") if isinstance(record.get("id"), str) else None
        problems = _line_problems(record, max_model_len, variant)
        if pid is not None and pid in first_line:
            problems.append(f"duplicate id {pid!r} (first on line {first_line[pid]})")
        elif pid is not None:
            first_line[pid] = number
        for problem in problems:
            bad(number, pid, problem)
        if not problems:
            prompts.append(
                Prompt(
                    id=pid,
                    messages=[{"role": m["role"], "content": m["content"]} for m in record["messages"]],
                    max_tokens=record["max_tokens"],
                    temperature=float(record.get("temperature", 0.0)),
                    tags=list(record.get("tags", [])),
                    reference=record.get("reference"),
                    rubric=record.get("rubric"),
                    assertions=tuple(parse_assertions(record.get("assert"))[0]),
                )
            )
    return prompts, issues


def _read_packaged(name: str) -> tuple[bytes, str]:
    path = resources.files(PACKAGE).joinpath(PACKAGED_DIR, f"{name}.jsonl")
    return path.read_bytes(), f"{name}.jsonl"


def _read_local(source: str) -> bytes:
    path = Path(source).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PromptsetError(
            f"cannot read promptset {source}: {exc.strerror or exc}; "
            f"packaged promptsets are {', '.join(packaged_promptsets())}"
        ) from None


def _read_s3(uri: str, s3_client: Any, version_id: str | None) -> tuple[bytes, str | None]:
    """Object bytes and its version (VersionId when versioned, else the ETag)."""
    try:
        bucket, key = parse_s3_uri(uri, what="promptset URI", key_required=True)
    except ValueError as exc:
        raise PromptsetError(str(exc)) from None
    if s3_client is None:
        import boto3  # lazily: only S3 sources need it; boto3 reads AWS_ENDPOINT_URL and credentials itself

        s3_client = boto3.client("s3")
    from botocore.exceptions import BotoCoreError, ClientError

    kwargs = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        obj = s3_client.get_object(**kwargs)
        body = obj["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code in ("NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404"):
            what = {"NoSuchBucket": f"bucket {bucket!r} does not exist", "NoSuchVersion": "no such version"}
            detail = what.get(code, f"no object with key {key!r} in bucket {bucket!r}")
            raise PromptsetError(f"promptset {uri} not found: {detail}") from None
        raise PromptsetError(f"cannot read promptset {uri}: {code}: {exc}") from None
    except BotoCoreError as exc:
        raise PromptsetError(f"cannot read promptset {uri}: {exc}") from None
    version = obj.get("VersionId")
    if not version or version == "null":
        version = (obj.get("ETag") or "").strip('"') or None
    return body, version


def load_promptset(
    source: str | os.PathLike[str],
    *,
    max_model_len: int | None = None,
    variant: str | None = None,
    strict: bool = True,
    s3_client: Any = None,
    version_id: str | None = None,
) -> LoadedPromptset:
    """Load a packaged promptset by name, a local JSONL file or an ``s3://bucket/key`` object.

    With ``variant`` and no ``max_model_len``, the limit comes from the packaged catalog; with either, every
    prompt must fit it (estimated prompt tokens + max_tokens). ``strict`` raises `PromptsetError` listing every
    bad line; otherwise bad lines are skipped and returned in ``issues``. ``version_id`` pins an S3 version.
    """
    source = os.fspath(source)
    if variant is not None and max_model_len is None:
        max_model_len = load_catalog().variant(variant).max_model_len
    s3_version = None
    if source in packaged_promptsets():
        raw, shown, name = *_read_packaged(source), source
    elif is_s3(source):
        raw, s3_version = _read_s3(source, s3_client, version_id)
        shown, name = source, Path(source).stem
    else:
        raw, shown, name = _read_local(source), source, Path(source).stem
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptsetError(f"promptset {shown} is not UTF-8 text: {exc}") from None
    prompts, issues = parse_promptset(text, shown, max_model_len=max_model_len, variant=variant)
    if strict and issues:
        lines = sorted({i.line for i in issues})
        raise PromptsetError(
            f"promptset {shown}: {len(lines)} bad line(s), nothing loaded:\n  " + "\n  ".join(map(str, issues)),
            issues,
        )
    if not prompts:  # lenient or not: a canary of nothing measures nothing
        skipped = f" (all {len(issues)} line(s) were bad; first: {issues[0]})" if issues else ""
        raise PromptsetError(f"promptset {shown} contains no prompts{skipped}", issues)
    digest = hashlib.sha256(raw).hexdigest()
    return LoadedPromptset(
        name=name,
        version=s3_version or f"sha256:{digest[:16]}",
        source=shown,
        prompts=prompts,
        issues=issues,
        sha256=digest,
    )
