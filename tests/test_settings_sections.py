"""gateway/settings.py, section by section (tests/test_settings.py holds what every setting
shares): authentication, operation limits, caches and upstream resilience, rate limits; each
read from the environment, written back, and a bad value named."""

from __future__ import annotations

import json

import pytest

from connectors.cache import DEFAULT_TTLS as CACHE_NAMES
from gateway.auth.trust import TrustedIssuer
from gateway.limits.config import DEFAULTS, AudienceLimits
from gateway.ratelimit.config import RateLimit, RateLimits
from gateway.settings import ConfigError, Settings
from policies.principal import Level
from support import IDP, REQUIRED_ENV

# ---------------------------------------------------------------------------- authentication


def test_authentication_settings_from_the_environment(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    issuers = [
        {"issuer": IDP, "jwks": "https://idp.example.test/jwks", "max_clearance": "secret"},
        {"issuer": "file-idp", "jwks": str(jwks), "algorithms": ["ES256", "RS256"]},
    ]
    env = {
        **REQUIRED_ENV,
        "BMA_GATEWAY_DATABASE_URL": "postgresql://x/gateway",
        "BMA_JWT_AUDIENCE": "bma-gateway-test",
        "BMA_JWT_LEEWAY": "60",
        "BMA_TRUSTED_ISSUERS": json.dumps(issuers),
        "BMA_ISSUER_KEY_FILE": str(tmp_path / "issuer.pem"),
        "BMA_API_KEY_CACHE_SECONDS": "2",
    }
    settings = Settings.from_env(env)
    assert settings.gateway_database_url == "postgresql://x/gateway"
    assert settings.jwt_audience == "bma-gateway-test" and settings.jwt_leeway == 60
    assert settings.trusted_issuers == (
        TrustedIssuer(IDP, "https://idp.example.test/jwks", ("ES256",), Level.SECRET),
        TrustedIssuer("file-idp", str(jwks), ("ES256", "RS256"), Level.PUBLIC),
    )
    assert settings.issuer_key_file == tmp_path / "issuer.pem"
    assert settings.api_key_cache_seconds == 2
    assert Settings.from_env(settings.to_env()) == settings


def test_authentication_defaults():
    settings = Settings.from_env(REQUIRED_ENV)
    assert settings.gateway_database_url is None and settings.issuer_key_file is None
    assert settings.trusted_issuers == ()
    assert (settings.jwt_audience, settings.jwt_leeway) == ("bma-gateway", 30)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BMA_JWT_LEEWAY", "61", "BMA_JWT_LEEWAY"),
        ("BMA_JWT_LEEWAY", "-1", "BMA_JWT_LEEWAY"),
        ("BMA_TRUSTED_ISSUERS", "{", "not valid JSON"),
        ("BMA_TRUSTED_ISSUERS", '{"issuer": "x"}', "JSON list"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "algorithms": ["HS256"]}]',
            "HS256",
        ),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "algorithms": ["none"]}]',
            "none",
        ),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "max_clearance": "top"}]',
            "max_clearance",
        ),
        ("BMA_TRUSTED_ISSUERS", '[{"issuer": "x", "jwks": "/no/such/file.json"}]', "no such file"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "alg": ["ES256"]}]',
            "unknown keys",
        ),
        ("BMA_TRUSTED_ISSUERS", '[{"jwks": "https://a/j"}]', "issuer"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j"}, {"issuer": "x", "jwks": "https://b/j"}]',
            "twice",
        ),
        ("BMA_API_KEY_CACHE_SECONDS", "120", "BMA_API_KEY_CACHE_SECONDS"),
    ],
)
def test_bad_authentication_settings_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED_ENV, variable: value})
    assert message in str(error.value)
    assert variable in str(error.value) or variable == "BMA_TRUSTED_ISSUERS"
    if variable == "BMA_TRUSTED_ISSUERS":
        assert "BMA_TRUSTED_ISSUERS" in str(error.value)


def test_the_embedded_issuer_name_is_reserved(tmp_path):
    env = {
        **REQUIRED_ENV,
        "BMA_ISSUER_KEY_FILE": str(tmp_path / "k.pem"),
        "BMA_TRUSTED_ISSUERS": '[{"issuer": "bma-gateway-embedded", "jwks": "https://a/j"}]',
    }
    with pytest.raises(ConfigError, match="BMA_TRUSTED_ISSUERS"):
        Settings.from_env(env)


# ---------------------------------------------------------------------------- rate limits


def parse_rate_limits(raw: str | None) -> RateLimits | None:
    """``BMA_RATE_LIMITS`` read as the gateway reads it (unset when None)."""
    env = REQUIRED_ENV if raw is None else {**REQUIRED_ENV, "BMA_RATE_LIMITS": raw}
    return Settings.from_env(env).rate_limits


def written(limits: RateLimits) -> str:
    """``BMA_RATE_LIMITS`` as the gateway writes it for its workers."""
    return (
        Settings.from_env(REQUIRED_ENV)
        .model_copy(update={"rate_limits": limits})
        .to_env()["BMA_RATE_LIMITS"]
    )


def test_the_setting_keeps_defaults_overrides_some_audiences_and_can_turn_limits_off():
    assert parse_rate_limits(None) == parse_rate_limits("") == RateLimits()
    assert parse_rate_limits(" OFF ") is None
    limits = parse_rate_limits('{"anonymous": {"rate": 2}, "app": {"burst": 7}, "agency": null}')
    assert limits == RateLimits(
        anonymous=RateLimit(2.0, RateLimits().anonymous.burst),
        app=RateLimit(RateLimits().app.rate, 7),
        agency=None,
    )
    assert limits is not None and parse_rate_limits(written(limits)) == limits


@pytest.mark.parametrize(
    "raw",
    [
        "nonsense",
        "[1, 2]",
        '{"admin": {"rate": 1, "burst": 1}}',
        '{"anonymous": 5}',
        '{"anonymous": {"rate": 0}}',
        '{"anonymous": {"rate": -1}}',
        '{"anonymous": {"rate": "5"}}',
        '{"anonymous": {"rate": NaN}}',
        '{"anonymous": {"burst": 0}}',
        '{"anonymous": {"burst": 2.5}}',
        '{"anonymous": {"burst": true}}',
        '{"anonymous": {"rate": 1, "burst": 1, "window": 60}}',
    ],
)
def test_a_malformed_setting_is_a_config_error_naming_the_variable(raw: str):
    with pytest.raises(ConfigError, match="BMA_RATE_LIMITS"):
        parse_rate_limits(raw)


def test_the_settings_read_and_write_the_rate_limits():
    env = {
        "BMA_TAX_DATABASE_URL": "postgresql://x/tax",
        "BMA_REGISTRY_DATABASE_URL": "postgresql://x/registry",
        "BMA_FINANCE_DATABASE_URL": "postgresql://x/finance",
        "BMA_TRAFFY_BASE_URL": "http://traffy.invalid",
    }
    assert Settings.from_env(env).rate_limits == RateLimits()
    for raw in ("off", '{"anonymous": {"rate": 1, "burst": 2}, "agency": null}'):
        settings = Settings.from_env({**env, "BMA_RATE_LIMITS": raw})
        assert settings.rate_limits == parse_rate_limits(raw)
        assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ConfigError, match="BMA_RATE_LIMITS.app.burst"):
        Settings.from_env({**env, "BMA_RATE_LIMITS": '{"app": {"burst": 0}}'})


# ---------------------------------------------------------------------------- operation limits


def test_the_settings_read_and_write_the_limits():
    env = {
        "BMA_TAX_DATABASE_URL": "postgresql://x/tax",
        "BMA_REGISTRY_DATABASE_URL": "postgresql://x/registry",
        "BMA_FINANCE_DATABASE_URL": "postgresql://x/finance",
        "BMA_TRAFFY_BASE_URL": "http://traffy.invalid",
    }
    assert Settings.from_env(env).operation_limits == AudienceLimits()
    assert Settings.from_env(env).to_env()["BMA_OPERATION_LIMITS"] == ""
    raw = '{"anonymous": {"max_depth": 8, "suggestions": true}, "agency": {"max_batch": 3}}'
    settings = Settings.from_env({**env, "BMA_OPERATION_LIMITS": raw})
    limits = settings.operation_limits
    assert limits.anonymous.max_depth == 8 and limits.anonymous.suggestions
    assert limits.anonymous.max_cost == DEFAULTS["anonymous"].max_cost  # merged onto the defaults
    assert limits.agency.max_batch == 3 and limits.app == DEFAULTS["app"]
    assert Settings.from_env({**env, **settings.to_env()}).operation_limits == limits
    for bad, named in [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"robots": {}}', "unknown audience 'robots'"),
        ('{"anonymous": {"depth": 3}}', "unknown key 'depth'"),
        ('{"anonymous": {"max_depth": 0}}', "anonymous.max_depth"),
        ('{"anonymous": {"max_depth": 500}}', "anonymous.max_depth"),
        ('{"app": {"max_cost": "lots"}}', "app.max_cost"),
        ('{"app": {"max_cost": true}}', "app.max_cost"),
        ('{"partner": {"introspection": "no"}}', "partner.introspection"),
        ('{"agency": []}', "agency"),
    ]:
        with pytest.raises(ConfigError, match="BMA_OPERATION_LIMITS") as raised:
            Settings.from_env({**env, "BMA_OPERATION_LIMITS": bad})
        assert named in str(raised.value), (bad, raised.value)


# ------------------------------------------------------------ caches and upstream resilience


def test_cache_and_resilience_settings_round_trip():
    env = {
        **REQUIRED_ENV,
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "BMA_CACHE_TTLS": '{"response": 5, "traffy.stats": 0}',
        "BMA_CACHE_STALE_SECONDS": "120",
        "BMA_UPSTREAM_RETRIES": "1",
        "BMA_UPSTREAM_CONCURRENCY": "8",
        "BMA_BREAKER_FAILURES": "3",
        "BMA_BREAKER_RESET_SECONDS": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.cache_ttls["response"] == 5 and settings.cache_ttls["traffy.stats"] == 0
    assert settings.cache_ttls["tax.revenue"] == CACHE_NAMES["tax.revenue"]  # default kept
    assert settings.cache_stale_seconds == 120
    assert (settings.upstream_retries, settings.upstream_concurrency) == (1, 8)
    assert (settings.breaker_failures, settings.breaker_reset_seconds) == (3, 2.5)
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BMA_CACHE_TTLS", "{", "not valid JSON"),
        ("BMA_CACHE_TTLS", "[1]", "JSON object"),
        ("BMA_CACHE_TTLS", '{"parcels": 10}', "unknown cache 'parcels'"),
        ("BMA_CACHE_TTLS", '{"response": -1}', "between 0 and 86400"),
        ("BMA_CACHE_TTLS", '{"response": true}', "between 0 and 86400"),
        ("BMA_CACHE_STALE_SECONDS", "-5", "BMA_CACHE_STALE_SECONDS"),
        ("BMA_UPSTREAM_RETRIES", "9", "BMA_UPSTREAM_RETRIES"),
        ("BMA_BREAKER_FAILURES", "0", "BMA_BREAKER_FAILURES"),
        ("BMA_UPSTREAM_CONCURRENCY", "many", "BMA_UPSTREAM_CONCURRENCY"),
    ],
)
def test_bad_cache_and_resilience_settings_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED_ENV, variable: value})
    assert message in str(error.value)
    assert variable in str(error.value)
