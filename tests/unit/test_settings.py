"""Settings read from the environment: a value that cannot work is refused naming its variable."""

import datetime as dt

import dagster as dg
import pytest

from llmplat_dagster.settings import Settings, SettingsError


@pytest.mark.parametrize("cron", ["0 2 * * *", "30 1 * * 1-5", "@daily", "*/15 * * * *"])
def test_valid_cron_is_taken(cron):
    assert Settings.from_env({"LLMPLAT_NIGHTLY_CRON": cron}).nightly_cron == cron


@pytest.mark.parametrize("cron", ["nope", "61 * * * *", "0 2 * *", "0 25 * * *"])
def test_invalid_cron_names_the_variable(cron):
    with pytest.raises(SettingsError, match=r"LLMPLAT_NIGHTLY_CRON=.*is not a cron expression"):
        Settings.from_env({"LLMPLAT_NIGHTLY_CRON": cron})


def test_partitions_start_at_the_first_night(tmp_path):
    from llmplat_dagster.definitions import build_definitions

    settings = Settings.from_env({"LLMPLAT_FIRST_NIGHT": "2026-12-01", "DAGSTER_HOME": str(tmp_path)})
    canary = build_definitions(settings).resolve_assets_def(dg.AssetKey(["llm_baseline", "mistral-7b-awq", "canary"]))
    keys = canary.partitions_def.get_partition_keys(current_time=dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC))
    assert keys[0] == "2026-12-01" and keys[-1] == "2026-12-03"  # nothing before the first night; tonight included


@pytest.mark.parametrize("night", ["yesterday", "2026-13-01", "01/12/2026"])
def test_first_night_must_be_a_date(night):
    with pytest.raises(SettingsError, match="LLMPLAT_FIRST_NIGHT"):
        Settings.from_env({"LLMPLAT_FIRST_NIGHT": night})
