"""Rollout state and failure diagnosis from plain Deployment/Pod/Event dicts: pure, no client, no clock.

`KubernetesCluster.wait_for_rollout` feeds it what the watch and the pod/event lists return; tests feed it
dicts. The user reads one reason and one sentence, so `diagnose` picks the most telling cause:

  OOMKilled > CrashLoopBackOff > InvalidImageName > ImagePullBackOff (ErrImagePull too)
  > CreateContainerConfigError (e.g. the hf-token Secret is missing) > Unschedulable,

and a Deployment that reports `Progressing=False/ProgressDeadlineExceeded` wraps the pod cause.
When the wait may end early (`FailureRules.is_terminal`):
  - ProgressDeadlineExceeded and InvalidImageName: at once (the controller / the kubelet gave up);
  - CrashLoopBackOff, OOMKilled: once a container restarted `crash_restarts` times (default 3),
    or the state persisted `grace_s`;
  - ImagePullBackOff, CreateContainerConfigError: once the state persisted `grace_s` (default 180 s):
    a registry hiccup or a Secret created a minute late must not fail the rollout;
  - Unschedulable: never before the deadline: spot GPU capacity comes and goes, the autoscaler may add a node;
  - a pod interrupted by spot (evicted, node shutdown, DisruptionTarget): never; it is counted and the
    wait continues for its replacement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

PULL_FAILURES = {"ImagePullBackOff": "ImagePullBackOff", "ErrImagePull": "ImagePullBackOff"}
# Order of `diagnose`: the first reason found wins.
PRIORITY = [
    "OOMKilled",
    "CrashLoopBackOff",
    "InvalidImageName",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "Unschedulable",
]
INTERRUPTED_POD_REASONS = {"Evicted", "Terminated", "NodeShutdown", "Shutdown"}
SPOT_EVENT_REASONS = {"SpotInterruption", "SpotInterrupted", "Evicted", "NodeShutdown", "TerminationByKubelet"}
SPOT_EVENT_TEXT = re.compile(r"spot interruption|spot instance|node termination|interruption notice", re.IGNORECASE)


@dataclass(frozen=True)
class Progress:
    """Where a Deployment's rollout stands, from its metadata.generation and status."""

    done: bool
    observed: bool  # the controller has seen the latest spec
    desired: int
    updated: int
    ready: int
    available: int
    total: int  # all replicas, old ones included

    def summary(self) -> str:
        old = self.total - self.updated
        tail = f", {old} old replica(s) left" if old > 0 else ""
        seen = "" if self.observed else ", spec not yet observed by the controller"
        return f"{self.ready}/{self.desired} ready, {self.updated} updated, {self.available} available{tail}{seen}"


def rollout_progress(dep: Obj) -> Progress:
    """Done when the controller observed this generation and every replica is updated, ready and available."""
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep.get("metadata") or {}
    desired = int(spec.get("replicas", 1))
    observed = int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1))
    updated = int(status.get("updatedReplicas", 0))
    ready = int(status.get("readyReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    done = observed and updated == ready == available == desired and total == desired
    return Progress(done, observed, desired, updated, ready, available, total)


@dataclass(frozen=True)
class Diagnosis:
    reason: str
    message: str
    pod: str = ""
    container: str = ""
    restarts: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.reason, self.pod


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def _condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _images(pod: Obj) -> dict[str, str]:
    spec = pod.get("spec") or {}
    return {c["name"]: c.get("image", "?") for c in [*spec.get("initContainers", []), *spec.get("containers", [])]}


def _memory_limit(pod: Obj, container: str) -> str:
    spec = pod.get("spec") or {}
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if c.get("name") == container:
            return ((c.get("resources") or {}).get("limits") or {}).get("memory", "unset")
    return "unset"


def is_interrupted(pod: Obj) -> bool:
    """A pod taken away by a spot interruption or node shutdown, not by its own fault."""
    status = pod.get("status") or {}
    if status.get("reason") in INTERRUPTED_POD_REASONS:
        return True
    target = _condition(pod, "DisruptionTarget")
    return bool(target and target.get("status") == "True")


def _container_diagnoses(pod: Obj) -> Iterable[Diagnosis]:
    name, images = _name(pod), _images(pod)
    status = pod.get("status") or {}
    for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        c, restarts = cs.get("name", "?"), int(cs.get("restartCount", 0))
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or last.get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, c)
            yield Diagnosis(
                "OOMKilled",
                f"container {c} of pod {name} was killed for running out of memory (limit {limit}, "
                f"{restarts} restarts); raise its memory limit or lower max_model_len/max_num_seqs",
                name,
                c,
                restarts,
            )
        w = waiting.get("reason", "")
        detail = f": {waiting['message']}" if waiting.get("message") else ""
        if w == "CrashLoopBackOff":
            code = terminated.get("exitCode", "?")
            yield Diagnosis(
                "CrashLoopBackOff",
                f"container {c} of pod {name} keeps crashing ({restarts} restarts, last exit code {code})",
                name,
                c,
                restarts,
            )
        elif w in PULL_FAILURES or w == "InvalidImageName":
            image = cs.get("image") or images.get(c, "?")
            yield Diagnosis(
                PULL_FAILURES.get(w, w), f"pod {name} cannot pull image {image} ({w}){detail}", name, c, restarts
            )
        elif w == "CreateContainerConfigError":
            yield Diagnosis(w, f"container {c} of pod {name} cannot be created{detail}", name, c, restarts)


def pod_diagnoses(pod: Obj, events: Sequence[Obj] = ()) -> list[Diagnosis]:
    """Every problem one pod shows, from its container states, its PodScheduled condition and its events."""
    if is_interrupted(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return []
    found = list(_container_diagnoses(pod))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        why = scheduled.get("message") or next(
            (
                e.get("message", "")
                for e in events
                if _about(e, "Pod", _name(pod)) and e.get("reason") == "FailedScheduling"
            ),
            "",
        )
        found.append(
            Diagnosis(
                "Unschedulable",
                f"pod {_name(pod)} is Pending: no node can take it: {why} (no spot GPU capacity?)",
                _name(pod),
            )
        )
    return found


def _about(event: Obj, kind: str, name: str) -> bool:
    inv = event.get("involvedObject") or event.get("regarding") or {}
    return inv.get("kind") == kind and inv.get("name") == name


def diagnose(dep: Obj, pods: list[Obj], events: list[Obj]) -> Diagnosis | None:
    """The one most telling reason the rollout is not done, or None if nothing is wrong yet."""
    found = [d for p in pods for d in pod_diagnoses(p, events)]
    found.sort(key=lambda d: PRIORITY.index(d.reason))
    cause = found[0] if found else None
    progressing = _condition(dep, "Progressing")
    if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        why = f"; likely cause: {cause.message}" if cause else ""
        deadline = (dep.get("spec") or {}).get("progressDeadlineSeconds", 600)
        return Diagnosis(
            "ProgressDeadlineExceeded",
            f"Deployment {_name(dep)} made no progress within its {deadline} s progress deadline "
            f"({progressing.get('message', '')}){why}",
            cause.pod if cause else "",
            cause.container if cause else "",
            cause.restarts if cause else 0,
        )
    return cause


def interrupted_pods(pods: list[Obj], events: list[Obj], deployment: str) -> dict[str, str]:
    """Pod name -> what interrupted it, from pod status and from spot/eviction events about the Deployment's pods."""
    out = {_name(p): (p.get("status") or {}).get("reason") or "DisruptionTarget" for p in pods if is_interrupted(p)}
    owned = {_name(p) for p in pods}
    for e in events:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        name = inv.get("name", "")
        if inv.get("kind") != "Pod" or not (name in owned or name.startswith(f"{deployment}-")):
            continue
        if e.get("reason") in SPOT_EVENT_REASONS or SPOT_EVENT_TEXT.search(e.get("message") or e.get("note") or ""):
            out.setdefault(name, e.get("reason") or "interruption event")
    return out


@dataclass(frozen=True)
class FailureRules:
    """When a diagnosis ends the wait before the deadline (see the module docstring)."""

    crash_restarts: int = 3
    grace_s: float = 180.0

    def is_terminal(self, diag: Diagnosis, seen_for_s: float) -> bool:
        if diag.reason in ("ProgressDeadlineExceeded", "InvalidImageName"):
            return True
        if diag.reason in ("CrashLoopBackOff", "OOMKilled"):
            return diag.restarts >= self.crash_restarts or seen_for_s >= self.grace_s
        if diag.reason in ("ImagePullBackOff", "CreateContainerConfigError"):
            return seen_for_s >= self.grace_s
        return False


class Persistence:
    """How long the same (reason, pod) has been the diagnosis, by the caller's clock; a new one restarts it."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._since = 0.0

    def seen_for(self, diag: Diagnosis | None, now: float) -> float:
        key = diag.key if diag else None
        if key != self._key:
            self._key, self._since = key, now
        return now - self._since


def selector_string(dep: Obj) -> str:
    """The Deployment's matchLabels as a label selector for listing its pods."""
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
