"""Flex Consumption rules that no schema states: the site type accepts these properties, ARM rejects them for FC1.

The type check (test_bicep_types.py) cannot catch them, because Microsoft.Web/sites is one type for every plan.
Each assertion names where the rule comes from. Sources: ARM's answer to a Flex site with ftpsState (error 51021,
quoted in issue 16); Microsoft's app settings reference, section "Flex Consumption plan deprecations"
(https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations); the
Flex Consumption IaC guide (https://learn.microsoft.com/azure/azure-functions/functions-infrastructure-as-code,
pivot flex-consumption-plan); the project's summary of both in ../shared/reference/infra-validation.md.
"""

from __future__ import annotations

from tests.infra.bicep_model import app_settings, one, props


def flex_site() -> dict:
    plan = one("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}, "these rules are for Flex Consumption"
    return props(one("Microsoft.Web/sites"))


def test_no_ftps_state_on_a_flex_site():
    # ARM rejects siteConfig.ftpsState on a Flex Consumption site (error 51021, issue 16; infra-validation.md).
    # FTP stays off through the basicPublishingCredentialsPolicies (ftp, scm: allow false) instead.
    assert "ftpsState" not in flex_site()["siteConfig"]


def test_no_settings_flex_does_not_support():
    # http20Enabled, remoteDebuggingEnabled and scmMinTlsVersion do not apply to Flex Consumption (issue 16): the
    # platform manages them, and the Flex IaC guide's site definitions set none of them.
    site_config = flex_site()["siteConfig"]
    for name in ("http20Enabled", "remoteDebuggingEnabled", "scmMinTlsVersion"):
        assert name not in site_config, name


def test_runtime_is_in_function_app_config_not_linux_fx_version():
    # Flex takes the language and version from properties.functionAppConfig.runtime; siteConfig.linuxFxVersion is
    # rejected, and functionAppConfig (deployment storage, scale, runtime) is required to create a Flex app.
    # Source: the Flex IaC guide (functionAppConfig holds deployment storage, scale and runtime) and the
    # deprecations section (linuxFxVersion is not used on Flex).
    site = flex_site()
    assert "linuxFxVersion" not in site["siteConfig"]
    config = site["functionAppConfig"]
    assert set(config) >= {"deployment", "scaleAndConcurrency", "runtime"}
    assert config["runtime"]["name"] == "python"
    assert config["deployment"]["storage"]["type"] == "blobContainer"


def test_no_app_settings_that_flex_rejects():
    # WEBSITE_RUN_FROM_PACKAGE and FUNCTIONS_WORKER_RUNTIME are replaced by functionAppConfig.deployment and
    # .runtime on Flex and must not be set (the deprecations section, which lists the others checked here too).
    settings = app_settings()
    for name in ("WEBSITE_RUN_FROM_PACKAGE", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION",
                 "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_NODE_DEFAULT_VERSION"):
        assert name not in settings, name
