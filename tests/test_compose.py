"""docker-compose.yml, the Dockerfile and .env.example agree with each other and with settings.py.

No Docker engine is needed: the compose file is read as YAML, and the environment it gives the Django
services is applied to `manage.py check --deploy` in a subprocess.
"""

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DJANGO_ROLES = ("web", "worker", "webhooks", "beat")
MAIL_CATCHER_IMAGES = ("mailpit", "mailhog", "mailcatcher", "maildev")
SECRET_KEY = "c0mp0se!Qm2#vR9@pL4$wZ8^nK1&cT6*hJ3(eB5)yU0-sD_fG+aW=oI"
# Read by the Makefile (`PORT=9000 make run`), not by settings.py.
NON_SETTINGS_VARIABLES = {"PORT"}


def settings_variables(source: str) -> set[str]:
    """Names of the environment variables a settings module reads.

    A name is the first (string) argument of a call to `env.<anything>(...)`, `os.getenv(...)`,
    `os.environ.get(...)`, of `os.environ[...]`, or of a module-level helper whose body calls `env.*`
    (`_bool`, `_int`, `_choice`, ...).
    """
    tree = ast.parse(source)

    def is_env_call(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
        )

    def is_os_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    helpers = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(is_env_call(inner) for inner in ast.walk(node))
    }
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_os_environ(node.value):
            key = node.slice
        elif (
            isinstance(node, ast.Call)
            and node.args
            and (
                is_env_call(node)
                or (isinstance(node.func, ast.Name) and node.func.id in helpers)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "get" and is_os_environ(node.func.value))
                or (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr == "getenv"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "os"
                )
            )
        ):
            key = node.args[0]
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def env_example_lines() -> dict[str, int]:
    """Variable name -> line index in .env.example, for `NAME=value` and commented `# NAME=value` lines."""
    found = {}
    for index, line in enumerate((ROOT / ".env.example").read_text().splitlines()):
        match = re.match(r"\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=", line)
        if match:
            assert match[1] not in found, f".env.example lists {match[1]} twice"
            found[match[1]] = index
    return found


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_]\w*))"
)


def interpolate(value, variables: dict[str, str]):
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, applied to a scalar."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op = match["braced"] or match["named"], match["op"] or ""
        if name in variables and (variables[name] or not op.startswith(":")):
            return variables[name]
        if op.endswith("?"):
            raise LookupError(f"{name} is required: {match['arg']}")
        return match["arg"] if op.endswith("-") else ""

    return _INTERPOLATION.sub(replace, value)


def load_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment_of(service: dict, variables: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {name: str(interpolate(value, variables)) for name, value in raw.items()}


def command_of(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def one_shot_services(services: dict) -> set[str]:
    """Services others wait on to *finish* (e.g. migrate); every other service runs for good."""
    return {
        name
        for service in services.values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if isinstance(service.get("depends_on"), dict)
        and dependency.get("condition") == "service_completed_successfully"
    }


def run_manage(*args: str, strip: set[str] = frozenset(), **env_overrides: str) -> subprocess.CompletedProcess:
    """Like tests/test_settings.py: the test run's database and broker (and anything in `strip`) stay out."""
    stripped = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"} | set(strip)
    env = {k: v for k, v in os.environ.items() if k not in stripped}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def read_by_settings() -> set[str]:
    return settings_variables((ROOT / "kyphofollow" / "settings.py").read_text())


@pytest.fixture(scope="module")
def django_environment(compose) -> dict[str, str]:
    return environment_of(compose["services"]["web"], {"SECRET_KEY": SECRET_KEY})


# --- The helpers themselves ---------------------------------------------------------------------


def test_the_settings_reader_finds_env_helper_and_os_environ_reads():
    source = (
        "import os\n"
        "def _flag(name, default):\n"
        "    return env.str(name, default=str(default))\n"
        "A = env.str('A_VAR', default='')\n"
        "B = env.list('B_VAR', default=[])\n"
        "C = _flag('C_VAR', True)\n"
        "D = os.environ.get('D_VAR')\n"
        "E = os.getenv('E_VAR')\n"
        "F = os.environ['F_VAR']\n"
        "G = env.db_url_config(A)\n"
        "H = other('NOT_A_VAR')\n"
    )

    assert settings_variables(source) == {"A_VAR", "B_VAR", "C_VAR", "D_VAR", "E_VAR", "F_VAR"}


def test_settings_py_is_read_for_the_variables_it_is_known_to_use(read_by_settings):
    assert {
        "DJANGO_ENV",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "EMAIL_URL",
        "TIME_ZONE",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_AGE",
        "HEALTH_WORKER_MAX_AGE_SECONDS",
    } <= read_by_settings


def test_interpolation_follows_compose_rules():
    variables = {"SET": "value", "EMPTY": ""}

    assert interpolate("${SET:-x}/${EMPTY:-fallback}/${EMPTY-kept}/${UNSET-d}/$$HOSTNAME", variables) == (
        "value/fallback//d/$HOSTNAME"
    )
    with pytest.raises(LookupError, match="UNSET is required"):
        interpolate("${UNSET:?set UNSET}", variables)


# --- Services -----------------------------------------------------------------------------------


def test_compose_defines_web_worker_beat_postgres_redis_and_a_mail_catcher(compose):
    services = compose["services"]

    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    assert any(
        any(kind in str(service.get("image", "")) for kind in MAIL_CATCHER_IMAGES) for service in services.values()
    ), "no mail catcher service (mailpit, mailhog, ...)"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_web_worker_and_beat_run_one_image_built_from_the_dockerfile(compose):
    services = compose["services"]
    images = {services[role].get("image") for role in DJANGO_ROLES}

    assert len(images) == 1 and None not in images, images
    built = [services[role].get("build") for role in DJANGO_ROLES if services[role].get("build")]
    assert built, "none of web, worker, beat has `build:`"
    contexts = {build if isinstance(build, str) else build.get("context", ".") for build in built}
    assert contexts == {"."}
    assert (ROOT / "Dockerfile").is_file()


def test_web_worker_and_beat_run_gunicorn_a_celery_worker_and_celery_beat(compose):
    services = compose["services"]

    web = command_of(services["web"])
    assert web[0] == "gunicorn" and "kyphofollow.wsgi" in web and "0.0.0.0:8000" in " ".join(web)
    assert command_of(services["worker"])[:4] == ["celery", "-A", "kyphofollow", "worker"]
    assert command_of(services["beat"])[:4] == ["celery", "-A", "kyphofollow", "beat"]


def test_django_services_start_after_migrations_on_healthy_postgres_and_redis(compose):
    services = compose["services"]
    (migrate,) = one_shot_services(services)

    assert command_of(services[migrate])[-3:] == ["manage.py", "migrate", "--noinput"]
    assert services[migrate].get("image") == services["web"].get("image")
    assert services[migrate]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in DJANGO_ROLES:
        depends_on = services[role]["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy", role
        assert depends_on["redis"]["condition"] == "service_healthy", role
        assert depends_on[migrate]["condition"] == "service_completed_successfully", role


def test_every_long_running_service_has_a_health_check(compose):
    services = compose["services"]
    long_running = set(services) - one_shot_services(services)

    assert set(DJANGO_ROLES) | {"postgres", "redis"} <= long_running
    for name in sorted(long_running):
        healthcheck = services[name].get("healthcheck") or {}
        test = healthcheck.get("test")
        assert test and not healthcheck.get("disable") and test != ["NONE"], f"{name} has no health check"


def test_redis_never_evicts_queued_tasks_and_persists_them(compose):
    command = command_of(compose["services"]["redis"])
    options = dict(zip(command[1::2], command[2::2], strict=False))

    assert command[0] == "redis-server"
    assert options.get("--maxmemory-policy") == "noeviction"
    assert options.get("--appendonly") == "yes"


def test_web_health_check_fetches_health_on_a_host_django_allows(compose, django_environment):
    test = compose["services"]["web"]["healthcheck"]["test"]
    url = re.search(r"https?://[^'\"\s]+", " ".join(test))[0]

    assert urlsplit(url).path == "/health/"
    assert urlsplit(url).hostname in django_environment["ALLOWED_HOSTS"].split(",")


# --- Environment --------------------------------------------------------------------------------


def test_web_worker_beat_and_migrate_get_the_same_environment(compose):
    services = compose["services"]
    roles = (*DJANGO_ROLES, *one_shot_services(services))
    environments = [environment_of(services[role], {"SECRET_KEY": SECRET_KEY}) for role in roles]

    assert all(environment == environments[0] for environment in environments), roles


def test_compose_refuses_to_start_without_a_secret_key(compose):
    with pytest.raises(LookupError, match="SECRET_KEY is required"):
        environment_of(compose["services"]["web"], {})


def test_every_variable_compose_sets_is_read_by_settings_and_listed_in_env_example(
    django_environment, read_by_settings
):
    listed = set(env_example_lines())

    assert set(django_environment) - read_by_settings == set(), "set by compose but never read by settings.py"
    assert set(django_environment) - listed == set(), "set by compose but missing from .env.example"


def test_every_variable_settings_reads_is_listed_in_env_example(read_by_settings):
    listed = set(env_example_lines())

    assert read_by_settings - listed == set(), "read by settings.py but missing from .env.example"
    assert listed - read_by_settings - NON_SETTINGS_VARIABLES == set(), ".env.example lists unknown variables"


def test_every_variable_in_env_example_has_a_comment_above_it():
    lines = (ROOT / ".env.example").read_text().splitlines()
    variable_lines = env_example_lines()

    for name, index in variable_lines.items():
        above = lines[index - 1] if index else ""
        assert above.startswith("#") and index - 1 not in variable_lines.values(), f"{name} has no comment"


def test_compose_urls_point_at_the_compose_services(compose, django_environment):
    services = compose["services"]
    database = urlsplit(django_environment["DATABASE_URL"])
    postgres = services["postgres"]["environment"]

    assert database.hostname == "postgres"
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert urlsplit(django_environment["REDIS_URL"]).hostname == "redis"
    mail = urlsplit(django_environment["EMAIL_URL"])
    assert any(kind in services[mail.hostname]["image"] for kind in MAIL_CATCHER_IMAGES)
    assert mail.port == 1025


# --- Production checks --------------------------------------------------------------------------


def test_compose_environment_passes_check_deploy_without_warnings(django_environment, read_by_settings):
    # As in the container, settings.py sees only what compose sets. SECURE_SSL_REDIRECT=false there
    # (plain HTTP on localhost) silences only security.W008.
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", strip=read_by_settings, **django_environment)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_compose_environment_with_ssl_redirect_on_passes_check_deploy_without_warnings(
    django_environment, read_by_settings
):
    environment = {**django_environment, "SECURE_SSL_REDIRECT": "true"}

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", strip=read_by_settings, **environment)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# --- Image --------------------------------------------------------------------------------------


def test_dockerfile_runs_as_a_non_root_user_and_bakes_in_no_secret():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)

    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0", "0:0"}
    for line in re.findall(r"^(?:ENV|ARG)\s.*$", dockerfile, flags=re.MULTILINE):
        assert not re.search(r"SECRET|PASSWORD|DATABASE_URL|EMAIL_URL", line), line
    # Dependencies from the hashed lock file, then the project without resolving anything.
    assert re.search(
        r"^RUN pip install --require-hashes -r requirements/run\.txt && pip install --no-deps \.$",
        dockerfile,
        flags=re.MULTILINE,
    )


def test_dockerfile_collects_static_files_in_production_mode():
    # Production serves static files through CompressedManifestStaticFilesStorage, whose manifest only
    # a production-mode collectstatic writes; without it every admin page fails to render.
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    collect = [line for line in dockerfile.splitlines() if line.startswith("RUN") and "collectstatic" in line]

    assert collect, "the Dockerfile does not run collectstatic"
    assert re.search(r"DJANGO_ENV=production\s.*manage\.py collectstatic --noinput", collect[0]), collect[0]


def _queues(command: list[str]) -> set[str]:
    """The queues a `celery worker` command consumes (none named: only the default queue, `celery`)."""
    return set(command[command.index("-Q") + 1].split(",")) if "-Q" in command else {"celery"}


@pytest.mark.hazard("HAZ-48")
def test_webhooks_have_a_worker_of_their_own_in_compose_and_the_procfile(compose):
    """The worker that pages never takes a webhook task, and some worker takes every webhook task."""
    services = compose["services"]
    assert _queues(command_of(services["worker"])) == {"celery"}
    assert _queues(command_of(services["webhooks"])) == {"webhooks"}
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert _queues(shlex.split(procfile["worker"])) == {"celery"}
    assert _queues(shlex.split(procfile["webhooks"])) == {"webhooks"}
