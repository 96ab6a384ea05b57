"""Waiting for a Deployment's rollout by watching it, not by polling on a sleep.

Each watch call is bounded by `timeout_seconds` (at most the time left, at most `watch_timeout_s`) and
resumes from the last resourceVersion seen; a 410 Gone or a closed stream reconnects (after 410 without a
resourceVersion, i.e. from a fresh list). Pods and events are read whenever the Deployment changes and at
every reconnect, because a crash loop or a pending pod does not change the Deployment. The decision itself
(done? what is wrong? give up now?) is the pure code in k8s/rollout.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from llmplat_dagster.k8s.api_errors import describe_error
from llmplat_dagster.k8s.cluster import ClusterError, Obj, RolloutResult
from llmplat_dagster.k8s.rollout import (
    Diagnosis,
    FailureRules,
    Persistence,
    Progress,
    diagnose,
    interrupted_pods,
    rollout_progress,
    selector_string,
)

LOG_LINES = 20


def _items(response: Any) -> list[Obj]:
    """Items of a list response read as plain JSON: the pure diagnosis wants dicts, and the generated models
    reject the partial objects some servers and fakes return."""
    return json.loads(response.data or b"{}").get("items") or []


@dataclass(frozen=True)
class ApiCalls:
    """What the watcher needs from a cluster, handed in narrow (as dagster-k8s's client takes its APIs, sleeper
    and timer): the core and apps APIs, the retrying `call`, time, sleep and a logger."""

    core: Any
    apps: Any
    call: Callable[..., Any]
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    log: Any
    watch_timeout_s: int = 30
    backoff_s: float = 0.5


class RolloutWatcher:
    """One wait for one Deployment; holds what was seen so far (evictions, how long a failure persisted)."""

    def __init__(self, api: ApiCalls, namespace: str, name: str, rules: FailureRules | None = None):
        self.api, self.namespace, self.name = api, namespace, name
        self.rules = rules or FailureRules()
        self.persistence = Persistence()
        self.interrupted: dict[str, str] = {}
        self.deployment: Obj | None = None
        self.diagnosis: Diagnosis | None = None

    def _result(self, ready: bool, reason: str, message: str, start: float, progress: Progress | None) -> RolloutResult:
        seconds = round(self.api.clock() - start, 3)
        ready_n, desired = (progress.ready, progress.desired) if progress else (0, 0)
        log = self.api.log.info if ready else self.api.log.warning
        log(f"rollout {self.namespace}/{self.name}: {reason}: {message.splitlines()[0]}")
        return RolloutResult(ready, reason, message, seconds, ready_n, desired, len(self.interrupted))

    def _observe(self, dep: Obj) -> Diagnosis | None:
        """Read the Deployment's pods and events; count interrupted pods; return the current diagnosis."""
        c = self.api
        pods = _items(
            c.call(
                f"list pods of Deployment/{self.namespace}/{self.name}",
                c.core.list_namespaced_pod,
                self.namespace,
                label_selector=selector_string(dep),
                _preload_content=False,
            )
        )
        events = _items(
            c.call(
                f"list events in {self.namespace}", c.core.list_namespaced_event, self.namespace, _preload_content=False
            )
        )
        for pod, why in interrupted_pods(pods, events, self.name).items():
            if pod not in self.interrupted:
                self.interrupted[pod] = why
                c.log.warning(f"pod {pod} of {self.name} was interrupted ({why}); waiting for its replacement")
        return diagnose(dep, pods, events)

    def _with_logs(self, diag: Diagnosis) -> str:
        if diag.reason not in ("CrashLoopBackOff", "OOMKilled") or not diag.pod:
            return diag.message
        c = self.api
        try:
            text = c.call(
                f"read logs of Pod/{self.namespace}/{diag.pod}",
                c.core.read_namespaced_pod_log,
                diag.pod,
                self.namespace,
                container=diag.container or None,
                previous=True,
                tail_lines=LOG_LINES,
                _preload_content=False,
            ).data
        except (ApiException, ClusterError) as exc:
            return f"{diag.message} (previous logs unavailable: {exc})"
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        lines = (text or "").rstrip("\n").splitlines()[-LOG_LINES:]
        if not lines:
            return f"{diag.message} (no previous logs)"
        return f"{diag.message}; last log lines:\n" + "\n".join(lines)

    def _check(self, dep: Obj, start: float) -> RolloutResult | None:
        """A result when the rollout is done or failed for good, None to keep waiting."""
        self.deployment = dep
        progress = rollout_progress(dep)
        if progress.done:
            return self._result(True, "Ready", f"{self.name}: {progress.summary()}", start, progress)
        self.diagnosis = self._observe(dep)
        if self.diagnosis is not None:
            seen_for = self.persistence.seen_for(self.diagnosis, self.api.clock())
            if self.rules.is_terminal(self.diagnosis, seen_for):
                return self._result(False, self.diagnosis.reason, self._with_logs(self.diagnosis), start, progress)
        return None

    def wait(self, timeout_s: float) -> RolloutResult:
        c = self.api
        start = c.clock()
        deadline = start + timeout_s
        resource_version: str | None = None
        apps = c.apps
        while (left := deadline - c.clock()) > 0:
            kwargs: dict[str, Any] = {
                "field_selector": f"metadata.name={self.name}",
                "timeout_seconds": max(1, int(min(left, c.watch_timeout_s))),
                "_request_timeout": (10, min(left, c.watch_timeout_s) + 15),
            }
            if resource_version:
                kwargs["resource_version"] = resource_version
            w = watch.Watch()
            got_event = False
            try:
                for event in w.stream(apps.list_namespaced_deployment, self.namespace, **kwargs):
                    got_event = True
                    dep = event["raw_object"]
                    resource_version = (dep.get("metadata") or {}).get("resourceVersion") or resource_version
                    if event["type"] == "DELETED":
                        self.deployment = None
                        continue
                    if (result := self._check(dep, start)) is not None:
                        w.stop()
                        return result
                    if c.clock() >= deadline:
                        w.stop()
                        break
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: start again from a fresh list
                    c.log.info(f"watch of {self.name}: 410 Gone, re-listing")
                    resource_version = None
                    continue
                if exc.status in (429, 500, 502, 503, 504):
                    c.log.warning(f"watch of {self.name}: {describe_error(exc)}; reconnecting in {c.backoff_s:g} s")
                    c.sleep(c.backoff_s)
                    continue
                raise ClusterError(f"watch Deployment/{self.namespace}/{self.name}: {describe_error(exc)}") from exc
            # A stream that ended quietly (server timeout): pods may have changed without the Deployment.
            quiet = not got_event and self.deployment is not None and c.clock() < deadline
            if quiet and (result := self._check(self.deployment, start)) is not None:
                return result
        return self._deadline_result(timeout_s, start)

    def _deadline_result(self, timeout_s: float, start: float) -> RolloutResult:
        if self.deployment is None:
            return self._result(
                False,
                "NotFound",
                f"Deployment {self.namespace}/{self.name} not found within {timeout_s:g} s",
                start,
                None,
            )
        progress = rollout_progress(self.deployment)
        head = f"{self.name} not ready after {timeout_s:g} s ({progress.summary()})"
        if self.diagnosis is None:
            return self._result(False, "DeadlineExceeded", head, start, progress)
        return self._result(False, self.diagnosis.reason, f"{head}: {self._with_logs(self.diagnosis)}", start, progress)
