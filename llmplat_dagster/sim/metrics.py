"""vLLM's Prometheus metrics, V1 names by default and V0 names on request, one registry per app.

Names follow vllm/v1/metrics/loggers.py (V1) and vllm/engine/metrics.py (V0); several simulators in
one test process must not collide, hence a private CollectorRegistry per app.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class SimMetrics:
    """Gauges, counters and histograms of one simulated engine, labelled ``model_name``."""

    def __init__(self, model_name: str, generation: str = "v1") -> None:
        self.generation = generation
        self.registry = CollectorRegistry()
        r, lab = self.registry, ["model_name"]
        v1 = generation == "v1"

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, lab, registry=r).labels(model_name)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        kv = "vllm:kv_cache_usage_perc" if v1 else "vllm:gpu_cache_usage_perc"
        self.kv_usage = gauge(kv, "KV-cache usage. 1 means 100 percent usage.")
        if not v1:
            gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU.").set(0)
            gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.").set(0)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative preemptions.", lab, registry=r)
        self.preemptions.labels(model_name)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens processed.", lab, registry=r)
        self.prompt_tokens = self.prompt_tokens.labels(model_name)
        self.gen_tokens = Counter("vllm:generation_tokens", "Generation tokens processed.", lab, registry=r)
        self.gen_tokens = self.gen_tokens.labels(model_name)
        self._success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*lab, "finished_reason"],
            registry=r,
        )
        self._model = model_name
        # vLLM's API server also counts HTTP requests (prometheus-fastapi-instrumentator: by method, status
        # grouped as 2xx/4xx/5xx, and route); the 5xx-ratio panel and alert read it.
        self.http_requests = Counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=r,
        )

        def hist(name: str, doc: str, buckets: tuple) -> Histogram:
            return Histogram(name, doc, lab, buckets=buckets, registry=r).labels(model_name)

        self.req_prompt = hist("vllm:request_prompt_tokens", "Prompt tokens per request.", _TOKEN_BUCKETS)
        self.req_gen = hist("vllm:request_generation_tokens", "Generation tokens per request.", _TOKEN_BUCKETS)
        self.ttft = hist("vllm:time_to_first_token_seconds", "Time to first token in seconds.", _TTFT_BUCKETS)
        itl = "vllm:inter_token_latency_seconds" if v1 else "vllm:time_per_output_token_seconds"
        self.itl = hist(itl, "Inter-token latency in seconds.", _ITL_BUCKETS)
        self.tpot = (
            hist("vllm:request_time_per_output_token_seconds", "Per-request mean TPOT.", _ITL_BUCKETS) if v1 else None
        )
        self.e2e = hist("vllm:e2e_request_latency_seconds", "End to end request latency.", _E2E_BUCKETS)
        self.queue = hist("vllm:request_queue_time_seconds", "Time in WAITING phase.", _E2E_BUCKETS)
        self.prefill = hist("vllm:request_prefill_time_seconds", "Time in PREFILL phase.", _E2E_BUCKETS)
        self.decode = hist("vllm:request_decode_time_seconds", "Time in DECODE phase.", _E2E_BUCKETS)

    def finished(
        self,
        *,
        reason: str,
        prompt_tokens: int,
        gen_tokens: int,
        queue_s: float,
        ttft_s: float,
        itls: list[float],
        e2e_s: float,
    ) -> None:
        """Record one finished request (reason: stop, length or abort)."""
        self._success.labels(self._model, reason).inc()
        self.prompt_tokens.inc(prompt_tokens)
        self.gen_tokens.inc(gen_tokens)
        self.req_prompt.observe(prompt_tokens)
        self.req_gen.observe(gen_tokens)
        self.ttft.observe(ttft_s)
        for x in itls:
            self.itl.observe(x)
        if self.tpot is not None and gen_tokens > 1:
            self.tpot.observe((e2e_s - ttft_s) / (gen_tokens - 1))
        self.e2e.observe(e2e_s)
        self.queue.observe(queue_s)
        self.prefill.observe(max(0.0, ttft_s - queue_s))
        self.decode.observe(max(0.0, e2e_s - ttft_s))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
