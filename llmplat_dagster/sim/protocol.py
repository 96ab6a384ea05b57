"""OpenAI/vLLM wire format: request validation, error bodies and response/chunk shapes.

Error bodies follow current vLLM (``{"error": {"message", "type", "param", "code"}}``, code = HTTP
status), which the official ``openai`` client turns into NotFoundError, BadRequestError, ... with the
message readable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from llmplat_dagster.sim.model import Token, count_tokens

_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
CHAT_TEMPLATE_TOKENS_PER_MESSAGE = 4


class ApiError(Exception):
    """Raised anywhere in a handler; rendered as an OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": _ERROR_TYPES.get(self.status, "APIError"),
                "param": self.param,
                "code": self.status,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    return body


@dataclass
class GenParams:
    """A validated /v1/chat/completions or /v1/completions request."""

    kind: str  # "chat" or "completion"
    model: str
    prompt: str
    prompt_tokens: int
    max_tokens: int
    temperature: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None  # number of top alternatives, None = off
    json_schema: dict | None = None
    json_mode: bool = False


def _chat_prompt(body: dict[str, Any]) -> tuple[str, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "Field 'messages' is required and must be a non-empty list.", "messages")
    texts = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m:
            raise ApiError(400, "Each message needs a 'role' and 'content'.", "messages")
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(str(content))
    prompt = "\n".join(texts)
    return prompt, count_tokens(prompt) + CHAT_TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def _completion_prompt(body: dict[str, Any]) -> tuple[str, int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "Field 'prompt' is required and must be a string.", "prompt")
    return prompt, count_tokens(prompt) + 1  # BOS


def parse_params(body: dict[str, Any], kind: str, default_model: str, max_model_len: int) -> GenParams:
    prompt, ptoks = _chat_prompt(body) if kind == "chat" else _completion_prompt(body)
    model = body.get("model") or default_model
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None:
        max_tokens = max(1, max_model_len - ptoks)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens must be a positive integer.", "max_tokens")
    if ptoks + max_tokens > max_model_len:
        where = "messages" if kind == "chat" else "prompt"
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{ptoks + max_tokens} tokens ({ptoks} in the {where}, {max_tokens} in the completion). "
            f"Please reduce the length of the {where} or completion.",
            "max_tokens",
        )
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1:
        raise ApiError(400, "n must be a positive integer.", "n")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    if kind == "chat":
        logprobs = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
    else:
        logprobs = body.get("logprobs")
    fmt = body.get("response_format") or {}
    schema = body.get("guided_json")
    if isinstance(schema, str):
        schema = json.loads(schema)
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
    temperature = body.get("temperature")
    return GenParams(
        kind=kind,
        model=model,
        prompt=prompt,
        prompt_tokens=ptoks,
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        seed=body.get("seed"),
        stop=stop,
        n=n,
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        logprobs=logprobs,
        json_schema=schema,
        json_mode=fmt.get("type") in ("json_object", "json_schema") or schema is not None,
    )


def _bytes(text: str) -> list[int]:
    return list(text.encode())


def chat_logprobs(tokens: list[Token], k: int) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.text,
                "logprob": t.logprob,
                "bytes": _bytes(t.text),
                "top_logprobs": [{"token": s, "logprob": lp, "bytes": _bytes(s)} for s, lp in t.top[:k]],
            }
            for t in tokens
        ]
    }


def completion_logprobs(tokens: list[Token], k: int, offset: int = 0) -> dict[str, Any]:
    offsets, pos = [], offset
    for t in tokens:
        offsets.append(pos)
        pos += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top[: max(k, 1)]) for t in tokens],
        "text_offset": offsets,
    }


def envelope(kind: str, rid: str, model: str, created: int | None = None, chunk: bool = False) -> dict:
    obj = ("chat.completion.chunk" if chunk else "chat.completion") if kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": created or int(time.time()), "model": model}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
