"""The measuring instrument: a streamed, timed OpenAI-compatible client (`client`), vLLM `/metrics` parsing
(`metrics`), per-request rows and their summaries (`results`), checkpoints, probes, load and sweeps.

Nothing is imported here: the Dagster code location imports single modules of this package, and importing the
client or the frames (httpx, pandas) eagerly would make every run pod and code server pay for them.
"""
