"""Configuration comes from the environment, with defaults that run on a laptop."""

import pytest

from midas.config import Config, database_url, engine_options


def test_heroku_postgres_url_is_accepted_and_uses_psycopg3():
    assert database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"


def test_default_database_is_the_embedded_sqlite_file():
    assert database_url(None).endswith("instance/midas.db")


def test_without_redis_jobs_run_in_process_and_limits_in_memory():
    config = Config({"SECRET_KEY": "x"})
    assert config.REDIS_URL is None and config.RATELIMIT_STORAGE_URI == "memory://"
    with_redis = Config({"SECRET_KEY": "x", "REDIS_URL": "redis://r:6379/0"})
    assert with_redis.RATELIMIT_STORAGE_URI == "redis://r:6379/0"


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Config({"MIDAS_ENV": "production"})
    assert Config({"DYNO": "web.1", "SECRET_KEY": "s"}).is_production


def test_pool_fits_a_twenty_connection_database_and_can_be_tuned():
    options = engine_options("postgresql+psycopg://h/d", {})
    per_process = options["pool_size"] + options["max_overflow"]
    assert 3 * per_process <= 20 and options["pool_pre_ping"]
    assert engine_options("postgresql+psycopg://h/d", {"DB_POOL_SIZE": "2"})["pool_size"] == 2


def test_webhook_secrets_may_list_several_for_rotation():
    config = Config({"SECRET_KEY": "x", "STRIPE_WEBHOOK_SECRET": "whsec_old, whsec_new"})
    assert config.STRIPE_WEBHOOK_SECRETS == ["whsec_old", "whsec_new"]
    assert Config({"SECRET_KEY": "x", "SMTP_URL": "smtp://h:25"}).EMAIL_PROVIDERS == ["smtp"]
