"""Revision-tick planning: which variants a moved ref re-rolls, what the cursor keeps, what the run is tagged."""

from __future__ import annotations

import dagster as dg
import pytest

from llmplat_dagster.automation.hub import LookupResult, tracked_ref, tracked_repos
from llmplat_dagster.automation.revisions import (
    RevisionChange,
    cursor_key,
    plan_revision_tick,
    run_key,
    run_tags,
)
from llmplat_dagster.catalog import Catalog, load_catalog

AWQ = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ"
FP16 = "mistralai/Mistral-7B-Instruct-v0.2"
FP16_PIN = "63a8b081895390a26e140280378bc85ec8bce07a"
ADAPTER = "finetune/support-lora"
AWQ_VARIANTS = ["mistral-7b-awq", "mistral-7b-judge", "mistral-7b-lora"]
A, B, C = "a" * 40, "b" * 40, "c" * 40


def _catalog(adapters: list[dict] | None = None, **revisions: str) -> Catalog:
    data = load_catalog().model_dump(mode="python")
    for variant in data["variants"]:
        if variant["name"] == "mistral-7b-lora" and adapters is not None:
            variant["lora"]["adapters"] = adapters
        if variant["name"] in revisions:
            variant["revision"] = revisions[variant["name"]]
    return Catalog.model_validate(data)


@pytest.fixture
def catalog() -> Catalog:
    return _catalog([{"name": "support-v1", "repo": ADAPTER, "revision": "main"}])


def ok(sha: str) -> LookupResult:
    return LookupResult(sha, None, "ok", 200)


def err(kind: str) -> LookupResult:
    return LookupResult(None, f"{kind} happened", kind)  # type: ignore[arg-type]


def cursor(awq: str = A, fp16: str = FP16_PIN, adapter: str = C) -> dict[str, str]:
    return {cursor_key(AWQ, "main"): awq, cursor_key(FP16, "main"): fp16, cursor_key(ADAPTER, "main"): adapter}


def results(awq=None, fp16=None, adapter=None) -> dict:
    return {(AWQ, "main"): awq or ok(A), (FP16, "main"): fp16 or ok(FP16_PIN), (ADAPTER, "main"): adapter or ok(C)}


@pytest.mark.parametrize(
    ("revision", "expected"),
    [("main", "main"), ("v1.0", "v1.0"), ("refs/pr/3", "refs/pr/3"), (FP16_PIN, "main"), ("a" * 39, "a" * 39)],
)
def test_tracked_ref_follows_branches_and_tags_and_watches_main_behind_a_pin(revision, expected):
    assert tracked_ref(revision) == expected


def test_tracked_repos_share_the_awq_base_and_give_adapters_to_lora_only(catalog):
    assert tracked_repos(catalog) == {
        (AWQ, "main"): ["mistral-7b-awq", "mistral-7b-lora", "mistral-7b-judge"],
        (FP16, "main"): ["mistral-7b-fp16"],
        (ADAPTER, "main"): ["mistral-7b-lora"],
    }


def test_a_pinned_adapter_is_tracked_at_the_default_ref():
    catalog = _catalog([{"name": "x", "repo": ADAPTER, "revision": B}])
    assert tracked_repos(catalog, default_ref="release")[(ADAPTER, "release")] == ["mistral-7b-lora"]


def test_a_new_awq_sha_changes_awq_lora_and_judge_and_nothing_else(catalog):
    plan = plan_revision_tick(catalog, cursor(), results(awq=ok(B)))
    assert plan.variants == AWQ_VARIANTS
    for name in AWQ_VARIANTS:
        assert plan.changes[name] == [RevisionChange(AWQ, A, B, "model")]
    assert plan.model_revisions == dict.fromkeys(AWQ_VARIANTS, B)
    assert plan.adapter_revisions == {}
    assert plan.new_cursor == cursor(awq=B)
    assert plan.skipped == [] and not plan.all_failed


def test_an_adapter_change_re_rolls_only_lora(catalog):
    plan = plan_revision_tick(catalog, cursor(), results(adapter=ok(B)))
    assert plan.changes == {"mistral-7b-lora": [RevisionChange(ADAPTER, C, B, "adapter:support-v1")]}
    assert plan.adapter_revisions == {"mistral-7b-lora": {"support-v1": B}}
    assert plan.model_revisions == {}


def test_base_and_adapter_moving_together_keep_both_changes_for_lora(catalog):
    plan = plan_revision_tick(catalog, cursor(), results(awq=ok(B), adapter=ok(B)))
    assert [c.via for c in plan.changes["mistral-7b-lora"]] == ["model", "adapter:support-v1"]
    assert run_tags(plan.changes)["llmplat-revision/mistral-7b-lora.support-v1"] == f"{C[:12]}->{B[:12]}"


def test_nothing_moved_means_no_changes(catalog):
    plan = plan_revision_tick(catalog, cursor(), results())
    assert plan.changes == {} and plan.new_cursor == cursor()


@pytest.mark.parametrize("kind", ["gated", "unauthorized", "not_found", "rate_limited", "timeout", "network", "error"])
def test_an_error_keeps_that_repos_cursor_and_names_repo_and_kind(catalog, kind):
    plan = plan_revision_tick(catalog, cursor(), results(awq=err(kind), adapter=ok(B)))
    assert plan.new_cursor == {**cursor(), cursor_key(ADAPTER, "main"): B}
    assert plan.skipped == [f"{AWQ}@main: {kind}: {kind} happened"]
    assert plan.variants == ["mistral-7b-lora"] and not plan.all_failed


def test_all_failed_when_every_lookup_failed(catalog):
    plan = plan_revision_tick(catalog, cursor(), results(err("network"), err("network"), err("timeout")))
    assert plan.all_failed and plan.new_cursor == cursor() and len(plan.skipped) == 3


def test_a_repo_missing_from_the_results_is_skipped_not_advanced(catalog):
    partial = {k: v for k, v in results(awq=ok(B)).items() if k[0] != AWQ}
    plan = plan_revision_tick(catalog, cursor(), partial)
    assert plan.new_cursor == cursor() and plan.skipped == [f"{AWQ}@main: not looked up this tick"]


def test_first_tick_records_everything_and_only_a_moved_pin_is_a_change(catalog):
    plan = plan_revision_tick(catalog, {}, results(awq=ok(B), fp16=ok(A), adapter=ok(C)))
    assert plan.new_cursor == cursor(awq=B, fp16=A, adapter=C)
    assert plan.changes == {"mistral-7b-fp16": [RevisionChange(FP16, FP16_PIN, A, "model")]}


def test_first_tick_with_the_pin_still_at_main_changes_nothing(catalog):
    plan = plan_revision_tick(catalog, {}, results())
    assert plan.changes == {}


def test_first_tick_compares_each_variant_with_its_own_pin():
    catalog = _catalog(**{"mistral-7b-judge": A})  # judge pinned to A, awq and lora follow main
    plan = plan_revision_tick(catalog, {}, results(awq=ok(B)))
    assert plan.changes == {"mistral-7b-judge": [RevisionChange(AWQ, A, B, "model")]}


def test_a_pinned_adapter_that_main_moved_past_is_a_change_on_the_first_tick():
    catalog = _catalog([{"name": "support-v1", "repo": ADAPTER, "revision": A}])
    plan = plan_revision_tick(catalog, {}, results(adapter=ok(B)))
    assert plan.changes == {"mistral-7b-lora": [RevisionChange(ADAPTER, A, B, "adapter:support-v1")]}


def test_unrelated_cursor_entries_survive(catalog):
    old = {**cursor(), "retired/model@main": A}
    assert plan_revision_tick(catalog, old, results(awq=ok(B))).new_cursor["retired/model@main"] == A


def test_run_key_is_stable_and_distinguishes_moves(catalog):
    one = plan_revision_tick(catalog, cursor(), results(awq=ok(B))).changes
    again = plan_revision_tick(catalog, cursor(), results(awq=ok(B))).changes
    other = plan_revision_tick(catalog, cursor(), results(awq=ok(C))).changes
    subset = {"mistral-7b-awq": one["mistral-7b-awq"]}
    assert run_key(one) == run_key(again) == run_key(dict(reversed(list(one.items()))))
    assert len({run_key(one), run_key(other), run_key(subset)}) == 3


def test_run_tags_name_old_and_new_sha_per_variant(catalog):
    changes = plan_revision_tick(catalog, cursor(), results(awq=ok(B))).changes
    assert run_tags(changes) == {f"llmplat-revision/{v}": f"{A[:12]}->{B[:12]}" for v in AWQ_VARIANTS}


@pytest.mark.parametrize(
    ("variant", "via", "old"),
    [
        ("mistral-7b-awq", "model", A),
        ("mistral-7b-lora", "adapter:support-v1", None),
        ("mistral-7b-lora", "adapter:" + "x" * 80, A),
        ("mistral-7b-lora", "adapter:weird name/with:chars", A),
        ("v" * 63, "model", A),
    ],
)
def test_run_tags_fit_dagsters_tag_rules(variant, via, old):
    tags = run_tags({variant: [RevisionChange("r/r", old, B, via)]})
    ((key, value),) = tags.items()
    dg.AssetSpec("probe", tags={key: ""})  # Dagster's strict tag-key rules (stricter than a run's) accept it
    assert len(value) <= 63 and value.endswith(B[:12])
    assert value.startswith("none->" if old is None else f"{old[:12]}->")
