"""Settings read from the environment: a value that cannot work is refused naming its variable."""

import pytest

from llmplat_dagster.settings import Settings, SettingsError


@pytest.mark.parametrize("cron", ["0 2 * * *", "30 1 * * 1-5", "@daily", "*/15 * * * *"])
def test_valid_cron_is_taken(cron):
    assert Settings.from_env({"LLMPLAT_NIGHTLY_CRON": cron}).nightly_cron == cron


@pytest.mark.parametrize("cron", ["nope", "61 * * * *", "0 2 * *", "0 25 * * *"])
def test_invalid_cron_names_the_variable(cron):
    with pytest.raises(SettingsError, match=r"LLMPLAT_NIGHTLY_CRON=.*is not a cron expression"):
        Settings.from_env({"LLMPLAT_NIGHTLY_CRON": cron})
