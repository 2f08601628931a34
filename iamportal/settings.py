"""iamportal settings: one file, configured by environment variables.

Every variable has a working default for local use (SQLite, the embedded demo
AWS). A malformed value stops start-up with an error that names the variable.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ImproperlyConfigured(f"{name} must be at least {minimum}{upper}, not {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-while-DEBUG-is-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "django_q",
    "iamportal",
    "accounts",
    "brokering",
    "requests_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "iamportal.urls"
WSGI_APPLICATION = "iamportal.wsgi.application"

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

_default_database_url = f"sqlite:///{BASE_DIR / 'iamportal.sqlite3'}"
try:
    _database = dj_database_url.parse(
        env_str("DATABASE_URL", _default_database_url),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and several workers write the same file: WAL lets readers
    # and one writer proceed together, IMMEDIATE avoids lock-upgrade deadlocks.
    _database["CONN_MAX_AGE"] = 0
    _database.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
DATABASES: dict[str, Any] = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        # A load balancer probing /healthz while the workers are down gets its 503;
        # that is not an error worth a log line per probe.
        "not_healthz": {
            "()": "django.utils.log.CallbackFilter",
            "callback": lambda record: "/healthz" not in record.getMessage(),
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["not_healthz"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # The embedded AWS logs every request it serves.
        "werkzeug": {"level": "WARNING"},
    },
}

# Production hardening. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto so Django knows the request was HTTPS.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
X_FRAME_OPTIONS = "DENY"

# --- AWS ---------------------------------------------------------------------
AWS_REGION = env_str("AWS_REGION", "us-east-1")
# Point every boto3 client at moto, LocalStack or another stand-in. Empty: real AWS.
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL") or None
AWS_MAX_ATTEMPTS = env_int("AWS_MAX_ATTEMPTS", 6, minimum=1, maximum=20)
IAMPORTAL_SPOKE_ROLE_NAME = env_str("IAMPORTAL_SPOKE_ROLE_NAME", "iamportal-spoke")
IAMPORTAL_SPOKE_EXTERNAL_ID = env_str("IAMPORTAL_SPOKE_EXTERNAL_ID")
IAMPORTAL_REGIONS = env_list("IAMPORTAL_REGIONS", AWS_REGION)
for _region in IAMPORTAL_REGIONS:
    if not _region.replace("-", "").isalnum():
        raise ImproperlyConfigured(f"IAMPORTAL_REGIONS has an invalid region name {_region!r}")
IAMPORTAL_SYNC_INTERVAL_MINUTES = env_int("IAMPORTAL_SYNC_INTERVAL_MINUTES", 30, minimum=1)
IAMPORTAL_SYNC_HISTORY_DAYS = env_int("IAMPORTAL_SYNC_HISTORY_DAYS", 30, minimum=1)

# --- Background workers (django-q2) -------------------------------------------
Q_BROKER = env_str("Q_BROKER")
Q_CLUSTER: dict[str, Any] = {
    "name": "iamportal",
    "workers": env_int("Q_WORKERS", 2, minimum=1, maximum=64),
    # A sync of a large account can take minutes; retry must exceed timeout.
    "timeout": env_int("Q_TIMEOUT", 900, minimum=30),
    "retry": env_int("Q_TIMEOUT", 900, minimum=30) + 300,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 500,
    "label": "Background jobs",
}
if not Q_BROKER:
    Q_CLUSTER["orm"] = "default"
elif Q_BROKER.startswith(("redis://", "rediss://", "unix://")):
    Q_CLUSTER["redis"] = Q_BROKER
else:
    raise ImproperlyConfigured(
        f"Q_BROKER must be empty (database broker) or a redis:// URL, not {Q_BROKER!r}"
    )

# How long without a worker heartbeat before /healthz reports the workers down.
IAMPORTAL_WORKER_HEARTBEAT_GRACE_SECONDS = env_int("IAMPORTAL_WORKER_HEARTBEAT_GRACE_SECONDS", 180)
# Bearer token that lets a Prometheus scraper read /metrics without a login.
IAMPORTAL_METRICS_TOKEN = env_str("IAMPORTAL_METRICS_TOKEN")

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "iamportal API",
    "DESCRIPTION": "Self-service control plane for AWS IAM across many accounts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}
