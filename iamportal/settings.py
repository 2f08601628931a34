"""iamportal settings: one file, configured by environment variables.

Every variable has a working default for local use (SQLite, the embedded demo
AWS). A malformed value stops start-up with an error that names the variable.
"""

import os
import re
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_networks(name: str) -> list[IPv4Network | IPv6Network]:
    networks = []
    for item in env_list(name):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated IP networks such as 10.0.0.0/8, not {item!r}"
            ) from None
    return networks


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
    # Swagger UI's files, served as iamportal's own static files.
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_q",
    "iamportal",
    "accounts",
    "brokering",
    "requests_app",
    "accounts.usage",
]

MIDDLEWARE = [
    # Django believes SECURE_PROXY_SSL_HEADER from anyone: drop it from other peers first.
    "iamportal.middleware.ForwardedProtoFromTrustedProxiesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "iamportal.middleware.ContentSecurityPolicyMiddleware",
    "iamportal.middleware.RejectNulCharactersMiddleware",
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
                "iamportal.context_processors.navigation",
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
if _database["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with the connection health check spaced out
    # (iamportal.postgresql.base).
    _database["ENGINE"] = "iamportal.postgresql"
# A connection that answered within this many milliseconds is not checked again
# before a request's first query; 0 checks before every request, as Django does.
DATABASE_HEALTH_CHECK_INTERVAL = (
    env_int("DATABASE_HEALTH_CHECK_INTERVAL_MS", 500, maximum=60_000) / 1000
)
# The few statements every credential request runs are prepared once per
# PostgreSQL connection (iamportal.rows.cursor; the ORM's queries bind their values
# on the client and are never prepared). Turn off behind a connection pooler in
# transaction mode that does not keep prepared statements (PgBouncer before 1.21,
# or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if _database["ENGINE"] == "iamportal.postgresql" and DATABASE_PREPARED_STATEMENTS:
    # Django turns psycopg's preparing off unless a threshold is given.
    _database.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)
DATABASES: dict[str, Any] = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "my_roles"
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
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # Django's own format for runserver's request lines.
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "filters": {
        # Tokens travel in some addresses (the Weep challenge, console sign-in,
        # single sign-on callbacks): request lines and URLs are logged without them.
        "redact_secrets": {"()": "iamportal.log_filters.RedactSecrets"},
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
            "filters": ["not_healthz", "redact_secrets"],
        },
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Whatever LOG_LEVEL says: at DEBUG these log what they send and receive,
        # which includes issued credentials (botocore), request details (urllib3),
        # SQL parameters such as session keys and tokens (django.db.backends) and
        # whole template contexts with CSRF tokens and new API tokens (django.template).
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
        "django.template": {"level": "INFO"},
        # Only through the handlers above: Django's default console handler for
        # its loggers (DEBUG on) would print their records a second time, unfiltered.
        "django": {"handlers": [], "level": LOG_LEVEL},
        # runserver's request lines, as Django logs them, less any secret in them.
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        # The embedded AWS logs every request it serves.
        "werkzeug": {"level": "WARNING"},
    },
}

# Production hardening. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto so Django knows the request was HTTPS;
# the header is believed only from IAMPORTAL_TRUSTED_PROXIES (see below).
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Off only for plain HTTP on loopback (the demo); `check --deploy` warns otherwise.
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
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
# Seconds to open a connection to AWS and to wait for a response; each attempt
# of a call may take both (a hung endpoint costs about AWS_MAX_ATTEMPTS times
# their sum per call, which the sync deadline below bounds per account).
AWS_CONNECT_TIMEOUT = env_int("AWS_CONNECT_TIMEOUT", 5, minimum=1, maximum=300)
AWS_READ_TIMEOUT = env_int("AWS_READ_TIMEOUT", 30, minimum=1, maximum=900)
IAMPORTAL_SPOKE_ROLE_NAME = env_str("IAMPORTAL_SPOKE_ROLE_NAME", "iamportal-spoke")
IAMPORTAL_SPOKE_EXTERNAL_ID = env_str("IAMPORTAL_SPOKE_EXTERNAL_ID")
IAMPORTAL_REGIONS = env_list("IAMPORTAL_REGIONS", AWS_REGION)
for _region in IAMPORTAL_REGIONS:
    if not _region.replace("-", "").isalnum():
        raise ImproperlyConfigured(f"IAMPORTAL_REGIONS has an invalid region name {_region!r}")
# The organisation's OU tree and service control policies are read from this
# account (the management account, or a delegated administrator). Empty: off.
IAMPORTAL_ORG_ACCOUNT_ID = env_str("IAMPORTAL_ORG_ACCOUNT_ID")
if IAMPORTAL_ORG_ACCOUNT_ID and not (
    len(IAMPORTAL_ORG_ACCOUNT_ID) == 12 and IAMPORTAL_ORG_ACCOUNT_ID.isdigit()
):
    raise ImproperlyConfigured("IAMPORTAL_ORG_ACCOUNT_ID must be a 12-digit AWS account id")
# The role iamportal assumes in that account to read it. Empty: the hub identity
# reads it directly (iamportal runs in that account).
IAMPORTAL_ORG_ROLE_NAME = env_str("IAMPORTAL_ORG_ROLE_NAME")
# Denied calls: the SQS queue an EventBridge rule feeds with the organisation's
# CloudTrail AccessDenied events (empty: not read), and how long a group of
# denied calls stays on the role page after its last event.
IAMPORTAL_DENIED_EVENTS_QUEUE_URL = env_str("IAMPORTAL_DENIED_EVENTS_QUEUE_URL")
IAMPORTAL_DENIED_CALLS_KEEP_DAYS = env_int("IAMPORTAL_DENIED_CALLS_KEEP_DAYS", 30, minimum=1)
# An AWS Config aggregator: when named, each account's resources of every type
# Config records are read from it (and S3, SQS and SNS directly only where it
# holds none). Empty: off, every account is read directly.
IAMPORTAL_CONFIG_AGGREGATOR = env_str("IAMPORTAL_CONFIG_AGGREGATOR")
if IAMPORTAL_CONFIG_AGGREGATOR and not re.fullmatch(r"[\w-]{1,256}", IAMPORTAL_CONFIG_AGGREGATOR):
    raise ImproperlyConfigured(
        "IAMPORTAL_CONFIG_AGGREGATOR must be a Config aggregator name (letters, digits, - and _)"
    )
# The account and region the aggregator lives in, and the role assumed there to
# query it (empty: the hub identity queries it, iamportal runs in that account).
IAMPORTAL_CONFIG_ACCOUNT_ID = env_str("IAMPORTAL_CONFIG_ACCOUNT_ID")
if IAMPORTAL_CONFIG_ACCOUNT_ID and not (
    len(IAMPORTAL_CONFIG_ACCOUNT_ID) == 12 and IAMPORTAL_CONFIG_ACCOUNT_ID.isdigit()
):
    raise ImproperlyConfigured("IAMPORTAL_CONFIG_ACCOUNT_ID must be a 12-digit AWS account id")
IAMPORTAL_CONFIG_REGION = env_str("IAMPORTAL_CONFIG_REGION", AWS_REGION)
if not IAMPORTAL_CONFIG_REGION.replace("-", "").isalnum():
    raise ImproperlyConfigured(
        f"IAMPORTAL_CONFIG_REGION has an invalid region name {IAMPORTAL_CONFIG_REGION!r}"
    )
IAMPORTAL_CONFIG_ROLE_NAME = env_str("IAMPORTAL_CONFIG_ROLE_NAME")
if IAMPORTAL_CONFIG_ROLE_NAME and not IAMPORTAL_CONFIG_ACCOUNT_ID:
    raise ImproperlyConfigured(
        "IAMPORTAL_CONFIG_ROLE_NAME needs IAMPORTAL_CONFIG_ACCOUNT_ID, the account the role is in"
    )
IAMPORTAL_SYNC_INTERVAL_MINUTES = env_int("IAMPORTAL_SYNC_INTERVAL_MINUTES", 30, minimum=1)
IAMPORTAL_SYNC_HISTORY_DAYS = env_int("IAMPORTAL_SYNC_HISTORY_DAYS", 30, minimum=1)
# One account's sync fails once it has run this long (checked between AWS calls),
# so a hung endpoint cannot hold a worker for long. Q_TIMEOUT must be longer.
IAMPORTAL_SYNC_DEADLINE_SECONDS = env_int("IAMPORTAL_SYNC_DEADLINE_SECONDS", 600, minimum=30)
# A running sync renews its lease as it goes (every quarter of the lease at
# most); a lease this old means its worker died, and another worker takes over.
IAMPORTAL_SYNC_LEASE_SECONDS = env_int("IAMPORTAL_SYNC_LEASE_SECONDS", 300, minimum=30)
# The sweep re-enqueues a queued sync no worker started within this long (once the
# broker has nothing else waiting), and gives up on a run handed to the broker
# this many times.
IAMPORTAL_SYNC_REQUEUE_SECONDS = env_int("IAMPORTAL_SYNC_REQUEUE_SECONDS", 300, minimum=30)
IAMPORTAL_SYNC_MAX_ATTEMPTS = env_int("IAMPORTAL_SYNC_MAX_ATTEMPTS", 3, minimum=1, maximum=20)

# --- Background work on requests (apply, expiry, email) ---------------------------
# A worker applying or removing a request's changes renews its lease between
# changes; a lease this old means the worker died, and another one takes over.
IAMPORTAL_WORK_LEASE_SECONDS = env_int("IAMPORTAL_WORK_LEASE_SECONDS", 300, minimum=30)
# The sweep hands an apply or an email no worker picked up within this long to the broker again.
IAMPORTAL_WORK_REQUEUE_SECONDS = env_int("IAMPORTAL_WORK_REQUEUE_SECONDS", 120, minimum=30)
# Hand-overs of one apply (or expiry) to the broker before the sweep gives up on it.
IAMPORTAL_APPLY_MAX_ATTEMPTS = env_int("IAMPORTAL_APPLY_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
# Tries to send one email before it is marked failed in the outbox.
IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS = env_int(
    "IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS", 5, minimum=1, maximum=50
)

# --- Credential brokering --------------------------------------------------------
# Role tags that grant access: values are ":"-separated group names or emails.
IAMPORTAL_AUTH_TAG = env_str("IAMPORTAL_AUTH_TAG", "iamportal-authorized")
IAMPORTAL_AUTH_CLI_TAG = env_str("IAMPORTAL_AUTH_CLI_TAG", "iamportal-authorized-cli-only")
# Lifetime of issued credentials; capped by each role's maximum session duration.
IAMPORTAL_CREDENTIAL_DURATION_SECONDS = env_int(
    "IAMPORTAL_CREDENTIAL_DURATION_SECONDS", 3600, minimum=900, maximum=43200
)
# When set, credentials carry a session policy denying calls from outside these networks.
IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS = env_networks("IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS")
# Whether a client's "no_ip_restrictions" request is honoured.
IAMPORTAL_ALLOW_NO_IP_RESTRICTIONS = env_bool("IAMPORTAL_ALLOW_NO_IP_RESTRICTIONS", False)
# Credential issuances per user per minute before further requests get 429.
IAMPORTAL_CREDENTIAL_RATE_LIMIT = env_int("IAMPORTAL_CREDENTIAL_RATE_LIMIT", 30, minimum=1)
# Policy lint, generation and dry runs per user per minute (API: 429 beyond it).
IAMPORTAL_POLICY_TOOLS_RATE_LIMIT = env_int("IAMPORTAL_POLICY_TOOLS_RATE_LIMIT", 120, minimum=1)
IAMPORTAL_FEDERATION_URL = env_str(
    "IAMPORTAL_FEDERATION_URL", "https://signin.aws.amazon.com/federation"
)
IAMPORTAL_CONSOLE_REGION = env_str("IAMPORTAL_CONSOLE_REGION", AWS_REGION)
# The Weep challenge login: the cookie the CLI sends back, and how long it lasts.
IAMPORTAL_CLI_COOKIE_NAME = env_str("IAMPORTAL_CLI_COOKIE_NAME", "iamportal_auth")
IAMPORTAL_CLI_TOKEN_HOURS = env_int("IAMPORTAL_CLI_TOKEN_HOURS", 12, minimum=1, maximum=168)
# mTLS: a TLS-terminating proxy puts the verified client identity in this header.
IAMPORTAL_MTLS_HEADER = env_str("IAMPORTAL_MTLS_HEADER")
IAMPORTAL_MTLS_TRUSTED_PROXIES = env_networks("IAMPORTAL_MTLS_TRUSTED_PROXIES")
if IAMPORTAL_MTLS_HEADER and not IAMPORTAL_MTLS_TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        "IAMPORTAL_MTLS_TRUSTED_PROXIES must list the proxy networks when "
        "IAMPORTAL_MTLS_HEADER is set"
    )
# Reverse proxies in front of iamportal: from these peers, the client's address is
# taken from X-Forwarded-For (the right-most entry that is not one of them).
IAMPORTAL_TRUSTED_PROXIES = env_networks("IAMPORTAL_TRUSTED_PROXIES")
if _proxy_header and not IAMPORTAL_TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        "IAMPORTAL_TRUSTED_PROXIES must list the proxy networks when "
        "SECURE_PROXY_SSL_HEADER is set: the header is believed only from them"
    )
# The demo serves a stand-in AWS federation endpoint so the Console button works offline.
IAMPORTAL_DEMO_FEDERATION = env_bool("IAMPORTAL_DEMO_FEDERATION", False)
# The demo answers AWS Config's aggregate queries with a stand-in that reads the
# embedded AWS (which lacks them); only ever against an embedded AWS on loopback.
IAMPORTAL_DEMO_CONFIG = env_bool("IAMPORTAL_DEMO_CONFIG", False)

# --- Cache -----------------------------------------------------------------------
# Per-user rate limits (lint, generate, dry run) are counted in the cache. The
# default is per process; with several web processes or hosts, point CACHE_URL
# at a shared Redis so a limit holds across all of them.
CACHE_URL = env_str("CACHE_URL")
if not CACHE_URL:
    CACHES: dict[str, Any] = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
elif CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
else:
    raise ImproperlyConfigured(
        f"CACHE_URL must be empty (a cache per process) or a redis:// URL, not {CACHE_URL!r}"
    )

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

# --- Email ----------------------------------------------------------------------
# Requesters and reviewers are told by email when a request needs review, is
# approved, rejected, applied, fails, gets a comment or is about to expire.
IAMPORTAL_NOTIFICATIONS = env_bool("IAMPORTAL_NOTIFICATIONS", True)
_email_backends = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    # Accepts and drops every email.
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}
EMAIL_HOST = env_str("EMAIL_HOST")
# Without a mail server configured, development prints emails on the console;
# production sends through SMTP (a local relay on localhost:25 by default).
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or ("smtp" if EMAIL_HOST or not DEBUG else "console")
EMAIL_BACKEND = _email_backends.get(EMAIL_BACKEND.lower(), EMAIL_BACKEND)
if "." not in EMAIL_BACKEND:
    raise ImproperlyConfigured(
        f"EMAIL_BACKEND must be one of {', '.join(_email_backends)} or a dotted path to "
        f"a Django email backend, not {EMAIL_BACKEND!r}"
    )
EMAIL_HOST = EMAIL_HOST or "localhost"
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS (STARTTLS, usually port 587) and EMAIL_USE_SSL (implicit TLS, "
        "usually port 465) exclude each other: set one"
    )
EMAIL_PORT = env_int(
    "EMAIL_PORT", 587 if EMAIL_USE_TLS else 465 if EMAIL_USE_SSL else 25, minimum=1, maximum=65535
)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
# A mail server that stops answering must not hold a worker forever.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "iamportal <iamportal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Identity -----------------------------------------------------------------
# Permission roles come from groups: reviewers review and approve requests;
# admins manage accounts, access rules and templates; everyone else is an engineer.
IAMPORTAL_REVIEWER_GROUPS = env_list("IAMPORTAL_REVIEWER_GROUPS", "security-reviewers")
IAMPORTAL_ADMIN_GROUPS = env_list("IAMPORTAL_ADMIN_GROUPS", "iamportal-admins")
# Separation of duties: nobody approves their own request. A small team whose
# only admin also requests changes may let admins approve their own; each such
# approval is marked as a self-approval in the request's timeline.
IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL = env_bool("IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL", False)
# Role names (shell patterns) no request may change, besides every account's spoke role.
IAMPORTAL_PROTECTED_ROLES = env_list("IAMPORTAL_PROTECTED_ROLES", "iamportal-*")

# Username/password login: "true" for everyone with a password (the demo),
# "superusers" for break-glass access only, "false" to turn it off.
IAMPORTAL_LOCAL_LOGIN = env_choice("IAMPORTAL_LOCAL_LOGIN", "true", ("true", "false", "superusers"))

# OpenID Connect single sign-on; on when a client id is configured.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
# Either the discovery document, or every endpoint and the issuer explicitly.
OIDC_OP_DISCOVERY_URL = env_str("OIDC_OP_DISCOVERY_URL")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
# Optional with explicit endpoints; discovery reads it from the provider's document.
OIDC_OP_END_SESSION_ENDPOINT = env_str("OIDC_OP_END_SESSION_ENDPOINT")
# Logging out of iamportal also ends the session at the provider, when it offers that.
IAMPORTAL_OIDC_PROVIDER_LOGOUT = env_bool("IAMPORTAL_OIDC_PROVIDER_LOGOUT", True)
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
# Empty: groups are managed in iamportal's admin and never synced from the provider.
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_REQUIRE_VERIFIED_EMAIL = env_bool("OIDC_REQUIRE_VERIFIED_EMAIL", True)
OIDC_USE_PKCE = True
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env_int("OIDC_SESSION_REFRESH_SECONDS", 900, minimum=60)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10, minimum=1)
# Tokens stay out of the session (sessions live in the database).
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
OIDC_AUTHENTICATE_CLASS = "iamportal.oidc.OidcLoginView"
OIDC_CALLBACK_CLASS = "iamportal.oidc.OidcCallbackView"
LOGIN_REDIRECT_URL_FAILURE = "/login/failed/"
# Machine endpoints never bounce through the provider for a session renewal.
OIDC_EXEMPT_URLS = [
    re.compile(r"^/api/"),
    re.compile(r"^/noauth/"),
    re.compile(r"^/healthz$"),
    re.compile(r"^/metrics$"),
]
if OIDC_ENABLED and not OIDC_OP_DISCOVERY_URL:
    for _name in (
        "OIDC_OP_ISSUER",
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        "OIDC_OP_TOKEN_ENDPOINT",
        "OIDC_OP_USER_ENDPOINT",
        "OIDC_OP_JWKS_ENDPOINT",
    ):
        if not globals()[_name]:
            raise ImproperlyConfigured(
                f"{_name} must be set when OIDC_RP_CLIENT_ID is set without OIDC_OP_DISCOVERY_URL"
            )

# Authentication by a trusted proxy (an ALB with OIDC, oauth2-proxy): the user's
# email in one header, groups (comma-separated) in another, believed only when
# the request comes straight from one of the trusted proxy networks.
IAMPORTAL_HEADER_AUTH_USER = env_str("IAMPORTAL_HEADER_AUTH_USER")
# When set, IAMPORTAL_HEADER_AUTH_USER carries the proxy's stable user id and this
# header the email; otherwise the user header is the email and the id at once.
IAMPORTAL_HEADER_AUTH_EMAIL = env_str("IAMPORTAL_HEADER_AUTH_EMAIL")
IAMPORTAL_HEADER_AUTH_GROUPS = env_str("IAMPORTAL_HEADER_AUTH_GROUPS")
IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES = env_networks("IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES")
if IAMPORTAL_HEADER_AUTH_USER and not IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        "IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES must list the proxy networks when "
        "IAMPORTAL_HEADER_AUTH_USER is set"
    )

# Single sign-on, proxy and certificate identities are linked to accounts by a stable
# key on first sign-in. An existing account with the same email is linked only when
# it has no password and is neither staff nor superuser; true links those as well.
IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS = env_bool("IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS", False)

AUTHENTICATION_BACKENDS = ["iamportal.auth.LocalPasswordBackend"]
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("iamportal.oidc.OidcBackend")
    MIDDLEWARE.append("iamportal.oidc.OidcSessionRefresh")
if IAMPORTAL_HEADER_AUTH_USER:
    AUTHENTICATION_BACKENDS.append("iamportal.auth.TrustedHeaderBackend")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "iamportal.auth.TrustedHeaderMiddleware",
    )

# --- Content-Security-Policy ----------------------------------------------------
# Sent on every response (iamportal.middleware.ContentSecurityPolicyMiddleware).
# No inline script, style or event handler anywhere: pages load iamportal's own
# static files only, and htmx runs without eval or script-tag evaluation.
CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    # Browsers check form-action on the redirects that follow a form, too: the
    # Console button's POST ends at the federation endpoint, and a sign-out may
    # end at the identity provider.
    "form-action": ["'self'"],
}


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


for _url in (
    IAMPORTAL_FEDERATION_URL,
    *(
        (OIDC_OP_DISCOVERY_URL, OIDC_OP_ISSUER, OIDC_OP_AUTHORIZATION_ENDPOINT)
        if OIDC_ENABLED
        else ()
    ),
):
    _form_origin = _origin(_url)
    if _form_origin and _form_origin not in CONTENT_SECURITY_POLICY["form-action"]:
        CONTENT_SECURITY_POLICY["form-action"].append(_form_origin)

# More sources for the policy, e.g. "form-action https://sso.example.com/logout;
# img-src https://avatars.example.com": directive and sources, ";" between directives.
for _extra in env_str("IAMPORTAL_CSP_EXTRA").split(";"):
    if not _extra.strip():
        continue
    _directive, *_sources = _extra.split()
    if not re.fullmatch(r"[a-z][a-z-]*", _directive) or not _sources:
        raise ImproperlyConfigured(
            "IAMPORTAL_CSP_EXTRA must be directives with their sources separated by ';', "
            f"such as 'form-action https://sso.example.com', not {_extra.strip()!r}"
        )
    for _source in _sources:
        if "," in _source:
            raise ImproperlyConfigured(f"IAMPORTAL_CSP_EXTRA has an invalid source {_source!r}")
        _known = CONTENT_SECURITY_POLICY.setdefault(_directive, [])
        if _source not in _known:
            _known.append(_source)

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "iamportal.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON of bounded size and depth: deeply nested JSON is a 400, never a 500.
    # Form bodies are flat, so DRF's own parsers for them are safe as they are.
    "DEFAULT_PARSER_CLASSES": [
        "iamportal.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # What the services refuse, as an HTTP status and a JSON body.
    "EXCEPTION_HANDLER": "iamportal.api_errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "iamportal API",
    "DESCRIPTION": "Self-service control plane for AWS IAM across many accounts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from iamportal's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Unused permissions (Access Advisor) and right-sizing ------------------------
# How often each account's Access Advisor data is read (spread over the interval
# by account); data older than this is stale: shown as such, never acted on.
IAMPORTAL_USAGE_INTERVAL_HOURS = env_int("IAMPORTAL_USAGE_INTERVAL_HOURS", 24, minimum=1)
# Access Advisor jobs one account's pass keeps running at once (IAM throttles
# GenerateServiceLastAccessedDetails per account).
IAMPORTAL_USAGE_JOBS_IN_FLIGHT = env_int("IAMPORTAL_USAGE_JOBS_IN_FLIGHT", 10, minimum=1)
# A running pass renews its lease between roles; a lapsed lease means its worker
# died and the sweep hands the pass to another, at most this many times.
IAMPORTAL_USAGE_LEASE_SECONDS = env_int("IAMPORTAL_USAGE_LEASE_SECONDS", 600, minimum=30)
IAMPORTAL_USAGE_MAX_ATTEMPTS = env_int("IAMPORTAL_USAGE_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
# The AWS endpoint is the embedded one (moto): iamportal answers the Access
# Advisor calls it lacks from demo data at the AWS boundary. Never in production.
IAMPORTAL_EMBEDDED_AWS = env_bool("IAMPORTAL_EMBEDDED_AWS", False)
