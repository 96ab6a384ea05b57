"""The pure rollout evaluation and failure diagnosis (k8s/rollout.py), table-driven."""

from __future__ import annotations

import pytest

from llmplat_dagster.k8s.rollout import (
    Diagnosis,
    FailureRules,
    Persistence,
    diagnose,
    interrupted_pods,
    rollout_progress,
    selector_string,
)

DEP = "mistral-7b-fp16"


def dep(generation=2, observed=2, replicas=1, updated=1, ready=1, available=1, total=1, conditions=()):
    return {
        "metadata": {"name": DEP, "generation": generation},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 900,
            "selector": {"matchLabels": {"b": "2", "a": "1"}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "done", "summary"),
    [
        ({}, True, "1/1 ready, 1 updated, 1 available"),
        ({"observed": 1}, False, "1/1 ready, 1 updated, 1 available, spec not yet observed by the controller"),
        ({"ready": 0, "available": 0}, False, "0/1 ready, 1 updated, 0 available"),
        ({"available": 0}, False, "1/1 ready, 1 updated, 0 available"),
        ({"updated": 0}, False, "1/1 ready, 0 updated, 1 available, 1 old replica(s) left"),
        ({"total": 2}, False, "1/1 ready, 1 updated, 1 available, 1 old replica(s) left"),
        (
            {"replicas": 2, "updated": 2, "ready": 2, "available": 2, "total": 2},
            True,
            "2/2 ready, 2 updated, 2 available",
        ),
        (
            {"replicas": 0, "updated": 0, "ready": 0, "available": 0, "total": 0},
            True,
            "0/0 ready, 0 updated, 0 available",
        ),
        ({"generation": 3, "observed": 4}, True, "1/1 ready, 1 updated, 1 available"),
    ],
)
def test_rollout_progress(kwargs, done, summary):
    progress = rollout_progress(dep(**kwargs))
    assert (progress.done, progress.summary()) == (done, summary)


def test_rollout_progress_of_an_empty_status():
    progress = rollout_progress({"metadata": {"generation": 1}, "spec": {"replicas": 1}})
    assert not progress.done and not progress.observed


def container(waiting=None, last=None, restarts=0, name="vllm", state_terminated=None):
    state = (
        {"waiting": waiting} if waiting else {"terminated": state_terminated} if state_terminated else {"running": {}}
    )
    return {"name": name, "restartCount": restarts, "state": state, "lastState": {"terminated": last} if last else {}}


def pod(name="p1", statuses=(), conditions=(), phase="Pending", reason=None, deleting=False):
    meta = {"name": name, **({"deletionTimestamp": "2024-01-01T00:00:00Z"} if deleting else {})}
    status = {"phase": phase, "containerStatuses": list(statuses), "conditions": list(conditions)}
    if reason:
        status["reason"] = reason
    spec = {
        "containers": [
            {"name": "vllm", "image": "vllm/vllm-openai:v0.6.3", "resources": {"limits": {"memory": "14Gi"}}}
        ]
    }
    return {"metadata": meta, "spec": spec, "status": status}


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
}
CRASH = container({"reason": "CrashLoopBackOff"}, {"reason": "Error", "exitCode": 1}, restarts=4)
OOM = container({"reason": "CrashLoopBackOff"}, {"reason": "OOMKilled", "exitCode": 137}, restarts=2)
PULL = container({"reason": "ImagePullBackOff", "message": 'Back-off pulling image "vllm/vllm-openai:v9"'})
ERR_PULL = container({"reason": "ErrImagePull", "message": "manifest unknown"})
INVALID = container({"reason": "InvalidImageName"})
CONFIG = container({"reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'})
PDE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "x" has timed out progressing.',
}


@pytest.mark.parametrize(
    ("pods", "conditions", "reason", "message"),
    [
        ([], (), None, None),
        ([pod(phase="Running", statuses=[container()])], (), None, None),
        (
            [pod(conditions=[UNSCHEDULABLE])],
            (),
            "Unschedulable",
            "pod p1 is Pending: no node can take it: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu. "
            "(no spot GPU capacity?)",
        ),
        (
            [pod(statuses=[CRASH])],
            (),
            "CrashLoopBackOff",
            "container vllm of pod p1 keeps crashing (4 restarts, last exit code 1)",
        ),
        (
            [pod(statuses=[OOM])],
            (),
            "OOMKilled",
            "container vllm of pod p1 was killed for running out of memory (limit 14Gi, 2 restarts); "
            "raise its memory limit or lower max_model_len/max_num_seqs",
        ),
        (
            [pod(statuses=[container(state_terminated={"reason": "OOMKilled"})])],
            (),
            "OOMKilled",
            None,
        ),
        (
            [pod(statuses=[PULL])],
            (),
            "ImagePullBackOff",
            "pod p1 cannot pull image vllm/vllm-openai:v0.6.3 (ImagePullBackOff): "
            'Back-off pulling image "vllm/vllm-openai:v9"',
        ),
        (
            [pod(statuses=[ERR_PULL])],
            (),
            "ImagePullBackOff",
            "pod p1 cannot pull image vllm/vllm-openai:v0.6.3 (ErrImagePull): manifest unknown",
        ),
        ([pod(statuses=[INVALID])], (), "InvalidImageName", None),
        (
            [pod(statuses=[CONFIG])],
            (),
            "CreateContainerConfigError",
            'container vllm of pod p1 cannot be created: secret "hf-token" not found',
        ),
        # Priority: the crash beats the pending pod, OOM beats a plain crash.
        ([pod("a", conditions=[UNSCHEDULABLE]), pod("b", statuses=[CRASH])], (), "CrashLoopBackOff", None),
        ([pod("a", statuses=[CRASH]), pod("b", statuses=[OOM])], (), "OOMKilled", None),
        ([pod("a", conditions=[UNSCHEDULABLE]), pod("b", statuses=[PULL])], (), "ImagePullBackOff", None),
        # Interrupted or terminating pods are not the rollout's fault.
        ([pod(statuses=[CRASH], reason="Evicted", phase="Failed")], (), None, None),
        ([pod(statuses=[CRASH], deleting=True)], (), None, None),
        (
            [pod(conditions=[UNSCHEDULABLE])],
            [PDE],
            "ProgressDeadlineExceeded",
            'Deployment mistral-7b-fp16 made no progress within its 900 s progress deadline (ReplicaSet "x" has timed '
            "out progressing.); likely cause: pod p1 is Pending: no node can take it: 0/4 nodes are available: "
            "4 Insufficient nvidia.com/gpu. (no spot GPU capacity?)",
        ),
        ([], [PDE], "ProgressDeadlineExceeded", None),
        ([], [{**PDE, "status": "True", "reason": "NewReplicaSetAvailable"}], None, None),
    ],
)
def test_diagnose(pods, conditions, reason, message):
    diag = diagnose(dep(ready=0, available=0, conditions=conditions), pods, [])
    assert (diag.reason if diag else None) == reason
    if message is not None:
        assert diag.message == message


def test_unschedulable_message_falls_back_to_the_scheduling_event():
    cond = {**UNSCHEDULABLE, "message": ""}
    events = [
        {"involvedObject": {"kind": "Pod", "name": "p1"}, "reason": "FailedScheduling", "message": "0/4 nodes: spot"}
    ]
    diag = diagnose(dep(), [pod(conditions=[cond])], events)
    assert diag.message == "pod p1 is Pending: no node can take it: 0/4 nodes: spot (no spot GPU capacity?)"


def ev(pod_name, reason, message="", kind="Pod"):
    return {"involvedObject": {"kind": kind, "name": pod_name}, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("pods", "events", "expected"),
    [
        ([], [], {}),
        ([pod("p1", reason="Evicted", phase="Failed")], [], {"p1": "Evicted"}),
        ([pod("p1", reason="NodeShutdown", phase="Failed")], [], {"p1": "NodeShutdown"}),
        ([pod("p1", reason="Terminated", phase="Failed")], [], {"p1": "Terminated"}),
        (
            [pod("p1", phase="Running", conditions=[{"type": "DisruptionTarget", "status": "True"}])],
            [],
            {"p1": "DisruptionTarget"},
        ),
        ([pod("p1", phase="Running", conditions=[{"type": "DisruptionTarget", "status": "False"}])], [], {}),
        ([], [ev(f"{DEP}-abc-1", "SpotInterruption")], {f"{DEP}-abc-1": "SpotInterruption"}),
        (
            [],
            [ev(f"{DEP}-abc-1", "Killing", "Stopping container: spot interruption notice")],
            {f"{DEP}-abc-1": "Killing"},
        ),
        ([pod("p1")], [ev("p1", "Evicted", "node termination")], {"p1": "Evicted"}),
        ([], [ev("other-app-1", "SpotInterruption")], {}),  # not ours
        ([], [ev("node-1", "SpotInterruption", kind="Node")], {}),
        ([], [ev(f"{DEP}-abc-1", "BackOff", "Back-off restarting failed container")], {}),
        (
            [pod("p1", reason="Evicted", phase="Failed")],
            [ev("p1", "SpotInterruption")],
            {"p1": "Evicted"},  # one pod, counted once
        ),
    ],
)
def test_interrupted_pods(pods, events, expected):
    assert interrupted_pods(pods, events, DEP) == expected


@pytest.mark.parametrize(
    ("reason", "restarts", "seen_for", "terminal"),
    [
        ("ProgressDeadlineExceeded", 0, 0, True),
        ("InvalidImageName", 0, 0, True),
        ("CrashLoopBackOff", 2, 0, False),
        ("CrashLoopBackOff", 3, 0, True),
        ("CrashLoopBackOff", 1, 180, True),
        ("OOMKilled", 3, 0, True),
        ("OOMKilled", 1, 10, False),
        ("ImagePullBackOff", 0, 179, False),
        ("ImagePullBackOff", 0, 180, True),
        ("CreateContainerConfigError", 0, 200, True),
        ("Unschedulable", 0, 10_000, False),
    ],
)
def test_failure_rules(reason, restarts, seen_for, terminal):
    assert FailureRules().is_terminal(Diagnosis(reason, "", "p", "c", restarts), seen_for) is terminal


def test_persistence_restarts_when_the_diagnosis_changes():
    p = Persistence()
    a, b = Diagnosis("ImagePullBackOff", "", "p1"), Diagnosis("ImagePullBackOff", "", "p2")
    assert p.seen_for(a, 100) == 0
    assert p.seen_for(a, 160) == 60
    assert p.seen_for(b, 200) == 0  # another pod: a new failure
    assert p.seen_for(None, 210) == 0
    assert p.seen_for(b, 220) == 0


def test_selector_string():
    assert selector_string(dep()) == "a=1,b=2"
    assert selector_string({}) == ""
