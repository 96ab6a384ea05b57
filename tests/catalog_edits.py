"""Catalog edits a platform engineer makes in YAML, shared by the tests that make them."""

GPTQ = "mistral-7b-gptq"
GPTQ_ENTRY = """
  - name: mistral-7b-gptq
    team: quant
    purpose: GPTQ 4-bit candidate
    model_id: TheBloke/Mistral-7B-Instruct-v0.2-GPTQ
    revision: main
    quantization: gptq
    max_model_len: 4096
    max_num_seqs: 16
    gpu_memory_utilization: 0.90
"""


def with_gptq_candidate(text: str) -> str:
    """The packaged catalog plus a fifth variant: its entry, its name under `evaluation.candidates`, and the GPU
    nodes it needs (one per replica, so the node pool grows with the catalog). No code changes."""
    text = text.replace("\nevaluation:", GPTQ_ENTRY + "\nevaluation:", 1)
    text = text.replace("    - mistral-7b-lora\n  judge", f"    - mistral-7b-lora\n    - {GPTQ}\n  judge", 1)
    return text.replace("    min_nodes: 8\n    max_nodes: 12\n", "    min_nodes: 10\n    max_nodes: 15\n", 1)
