"""Settings come from the environment; a malformed value stops start-up with a message naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "x7!Qm2#vR9@pL4$wZ8^nK1&cT6*hJ3(eB5)yU0-sD_fG+aW=oI",
    "ALLOWED_HOSTS": "kyphofollow.example.org",
    "DATABASE_URL": "postgres://kf:secret@db.internal:5432/kyphofollow",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.org:587",
    "SITE_URL": "https://kyphofollow.example.org",
}


def run_manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    dropped = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be one of"),
        ("DATABASE_URL", "mysql-ish:/nowhere", "DATABASE_URL must be a postgres:// URL"),
        ("DATABASE_URL", "sqlite:///var/kyphofollow.sqlite3", "DATABASE_URL must be a postgres:// URL"),
        ("DATABASE_URL", "postgres://db.internal:5432/", "DATABASE_URL must name a database"),
        ("REDIS_URL", "amqp://guest@localhost//", "REDIS_URL must be a redis:// URL"),
        ("TIME_ZONE", "Moon/Base", "TIME_ZONE must be an IANA time zone"),
        ("SESSION_COOKIE_AGE", "eight hours", "SESSION_COOKIE_AGE must be a whole number"),
        ("DJANGO_ENV", "staging", "DJANGO_ENV must be one of development, production"),
        ("EMAIL_URL", "carrier-pigeon://loft", "EMAIL_URL must start with one of"),
    ],
)
def test_malformed_variable_is_named_and_start_up_fails(variable, value, message):
    result = run_manage("check", **{variable: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = dict(PRODUCTION)
    del env["SECRET_KEY"]

    result = run_manage("check", **env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DJANGO_ENV=production" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "true", "DEBUG must be false when DJANGO_ENV=production"),
        ("SECRET_KEY", "short-but-random-Qm2vR9pL4wZ8nK1cT6hJ3", "SECRET_KEY must be at least 50 characters"),
        ("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef", "not the example key"),
        ("STAFF_REQUIRE_2FA", "false", "STAFF_REQUIRE_2FA must be true when DJANGO_ENV=production"),
        ("SITE_URL", "http://kyphofollow.example.org", "SITE_URL must be an https:// address"),
        ("SITE_URL", "http://localhost.example.org", "SITE_URL must be an https:// address"),
        ("WEBHOOK_ALLOW_LOOPBACK", "true", "WEBHOOK_ALLOW_LOOPBACK must be false when DJANGO_ENV=production"),
    ],
)
@pytest.mark.hazard("HAZ-48")
def test_production_refuses_to_start_unsafe_naming_the_variable(variable, value, message):
    result = run_manage("check", **{**PRODUCTION, variable: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_the_example_secret_key_is_the_one_production_refuses():
    example = (ROOT / ".env.example").read_text()

    assert "# SECRET_KEY=dev-only-insecure-key-do-not-use-in-production-0123456789abcdef\n" in example


def test_production_settings_pass_check_deploy_without_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_defaults_need_no_server_but_the_embedded_postgresql_make_run_starts_in_var_dir(tmp_path):
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['HOST'], d['NAME'], s.CELERY_BROKER_URL, s.EMAIL_BACKEND)",
        VAR_DIR=str(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        str(tmp_path / "pgdata"),
        "kyphofollow",
        "filesystem://",
        "django.core.mail.backends.filebased.EmailBackend",
    ]
