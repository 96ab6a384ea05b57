"""llmplat-sim: a vLLM-compatible server for CI and the local default (no GPU, no weights)."""

__version__ = "0.1.0"
