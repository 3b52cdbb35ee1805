"""Settings for the options chain tracker, read from environment variables.

Every variable is listed with its default and meaning in README.md ("Configuration").
A bad value stops the process with one ``ImproperlyConfigured`` line naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from optionsite.env import env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string, or set DJANGO_DEBUG=1 for local use."
        )
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS: all off by default (a laptop over http); docker/compose.yaml turns them on behind a TLS proxy ----
# The header by which the proxy says a request came over https, e.g. HTTP_X_FORWARDED_PROTO,https. Set it only
# when the proxy sets that header on every request, overwriting the client's, and the web port is reachable only
# through the proxy: else any client can claim https.
_PROXY_SSL_HEADER = env_list("DJANGO_SECURE_PROXY_SSL_HEADER", [])
if _PROXY_SSL_HEADER and (len(_PROXY_SSL_HEADER) != 2 or not _PROXY_SSL_HEADER[0].startswith("HTTP_")):
    raise ImproperlyConfigured(
        f"DJANGO_SECURE_PROXY_SSL_HEADER={os.environ['DJANGO_SECURE_PROXY_SSL_HEADER']!r} must be a request "
        "header's META name and its value over https, e.g. HTTP_X_FORWARDED_PROTO,https."
    )
SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER[0], _PROXY_SSL_HEADER[1]) if _PROXY_SSL_HEADER else None
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Health probes (the compose healthcheck, load balancers) ask over plain http from inside the proxy.
SECURE_REDIRECT_EXEMPT = [r"^api/health(/|$)"]
# Browsers refuse plain http to the site for this long (s) once they saw it over https: hard to take back.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Session and CSRF cookies sent over https only: a login over plain http then fails.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "optionsite",
    "assets",
    "ingest",
    "chain",
    "history",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before the session is looked up: a NUL in its cookie is refused there (optionsite/middleware.py).
    "optionsite.middleware.BadInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "optionsite.urls"
ASGI_APPLICATION = "optionsite.asgi.application"
# Threads per web process that run requests' synchronous code (optionsite.handlers).
HTTP_THREADS = env_int("HTTP_THREADS", 4, minimum=1, maximum=64)
# Web server processes `make demo`/`make run` start, sharing one listening socket (optionsite/devstack.py): each
# takes at most one core, and the feed processes want the rest at Bybit's full rate, so half the cores.
WEB_PROCESSES = env_int("WEB_PROCESSES", max(1, (os.cpu_count() or 1) // 2), minimum=1, maximum=64)
# Requests that may wait for one of those threads; past that, or after waiting HTTP_QUEUE_TIMEOUT seconds, a
# request is answered 503 with Retry-After at once (optionsite/handlers.py).
HTTP_QUEUE_LIMIT = env_int("HTTP_QUEUE_LIMIT", 64, minimum=1)
HTTP_QUEUE_TIMEOUT = env_float("HTTP_QUEUE_TIMEOUT", 5.0, minimum=0.1)

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

# --- Database: an SQLite file unless DATABASE_URL names another one -------------------
_DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(_DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL={_DATABASE_URL!r} is not a database URL: {exc}") from None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: one server by default, each use overridable -------------------------------
_REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=_REDIS_SCHEMES)
CACHE_REDIS_URL = env_url("CACHE_REDIS_URL", REDIS_URL, schemes=_REDIS_SCHEMES)
CHANNEL_LAYER_REDIS_URL = env_url("CHANNEL_LAYER_REDIS_URL", REDIS_URL, schemes=_REDIS_SCHEMES)
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL, schemes=(*_REDIS_SCHEMES, "amqp", "pyamqp"))
# Every key this project writes starts with this prefix, so that several installations
# (or a test run) can share one Redis database without touching each other's keys.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "optionsite:")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        # channels-redis' layer, forgetting what reached a channel once its consumer left (optionsite/channel_layer.py)
        "BACKEND": "optionsite.channel_layer.ChannelLayer",
        "CONFIG": {
            # One pooled connection per consumer joining its group at once: redis-py's default
            # cap of 100 failed a burst of 150 browser tabs connecting together.
            # socket_timeout: channels-redis waits for a message with a 5 s blocking pop, and redis-py 8's
            # default read timeout is 5 s too, so every receive that waited the whole pop raised
            # TimeoutError and daphne closed the WebSocket (1011) after ~5 s without an event
            # (redis/redis-py#4091, django/channels_redis#422; docs/websocket.md). The read timeout must
            # outlast the pop; a Redis that stops answering still fails the read after it.
            "hosts": [{"address": CHANNEL_LAYER_REDIS_URL, "max_connections": 1000, "socket_timeout": 15}],
            "prefix": f"{REDIS_KEY_PREFIX}asgi",
            # A browser tab that stops reading must not hold updates for everyone else.
            "capacity": 200,
            "expiry": 30,
            # A group member is forgotten this long (s) after it last joined; every connection re-joins
            # three times per period (chain.consumers), so a page may stay open for days. channels-redis'
            # default; shorter only in tests.
            "group_expiry": env_int("CHANNEL_LAYER_GROUP_EXPIRY", 86400, minimum=1),
        },
    }
}

# --- Celery ---------------------------------------------------------------------------
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_KEY_PREFIX}celery:"}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Feed tasks run for hours on the thread pool; a worker must not reserve feed tasks it
# has no free thread for (another worker should take them).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# History's tasks write to the database for seconds at a time: never on a feed process (which takes `celery`),
# only on the history worker (optionsite/devstack.py, docker/compose.yaml).
CELERY_TASK_ROUTES = {
    "ingest.run_feed": {"queue": "feeds"},
    "history.record_snapshots": {"queue": "history"},
    "history.prune": {"queue": "history"},
}
# Every worker also consumes a queue of its own (<node name>.dq2): dispatch sends each feed to the
# worker it chose for it (ingest/placement.py), not to whichever takes the shared queue first.
CELERY_WORKER_DIRECT = True

# --- Bybit ----------------------------------------------------------------------------
# Mainnet by default; `make demo` points both at the local simulator.
BYBIT_REST_URL = env_url("BYBIT_REST_URL", "https://api.bybit.com", schemes=("http", "https"))
BYBIT_WS_URL = env_url("BYBIT_WS_URL", "wss://stream.bybit.com/v5/public/option", schemes=("ws", "wss"))
if "/v5/public" not in BYBIT_WS_URL:
    # pybit refuses public topics on any other path (reference §6.1).
    raise ImproperlyConfigured(f"BYBIT_WS_URL={BYBIT_WS_URL!r} must contain /v5/public (e.g. .../v5/public/option).")

# --- Ingest ---------------------------------------------------------------------------
FEED_FLUSH_INTERVAL = env_float("FEED_FLUSH_INTERVAL", 0.25, minimum=0.01)
# Data older than this (its exchange ts, or the feed's lag p99) is not fresh. Bybit pushes every option ticker
# every 100 ms (docs/redis.md, "Feed status"): 2 s is 20 missed pushes and 8 flushes; the default stack's
# freshness p99 measured 150-232 ms at Bybit's full rate (docs/benchmarks.md).
FEED_STALE_AFTER = env_float("FEED_STALE_AFTER", 2.0, minimum=0.5)
FEED_SILENCE_TIMEOUT = env_float("FEED_SILENCE_TIMEOUT", 10.0, minimum=1.0)
FEED_REFRESH_INTERVAL = env_float("FEED_REFRESH_INTERVAL", 300.0, minimum=5.0)
FEED_LEASE_TTL = env_float("FEED_LEASE_TTL", 15.0, minimum=3.0)
# One Redis hash per contract besides its chain entry, for scripts that read single fields
# (docs/redis.md); off by default: it is most of the cost of a feed's writes.
FEED_CONTRACT_HASHES = env_bool("FEED_CONTRACT_HASHES", False)
# The feed computes its asset's analytics once a second while the chain changes (docs/analytics.md); off only
# to measure what they cost.
FEED_ANALYTICS = env_bool("FEED_ANALYTICS", True)
# Feed worker processes `make demo`/`make run` and the Docker worker start (optionsite/devstack.py):
# one per core, since each process has an interpreter lock of its own.
FEED_PROCESSES = env_int("FEED_PROCESSES", os.cpu_count() or 1, minimum=1, maximum=64)
# No "dispatch-feeds" entry: the feed workers run the dispatch rounds themselves (ingest/supervision.py), so
# that a dead worker's assets are taken over while beat is down too.
CELERY_BEAT_SCHEDULE = {
    "refresh-instruments": {"task": "ingest.refresh_instruments", "schedule": FEED_REFRESH_INTERVAL},
    # Bybit delivers at 08:00 UTC and lists new expiries then: look just after.
    "refresh-after-delivery": {"task": "ingest.refresh_instruments", "schedule": crontab(minute="0,1,5", hour="8")},
}

# --- History (docs/history.md) ----------------------------------------------------------
HISTORY_ENABLED = env_bool("HISTORY_ENABLED", True)
# Seconds between snapshots; each snapshot's time is on this grid (history.recorder.snapshot_time).
HISTORY_INTERVAL = env_int("HISTORY_INTERVAL", 60, minimum=1, maximum=86400)
# Days kept, per kind (docs/history.md, "Retention"): for BTC, ETH and SOL on SQLite a day of per-contract rows is
# ~0.76 GiB (a week ~5.3 GiB; a month, ~23 GiB, would not be "without worry" on a laptop), a day of per-expiry and
# constant-maturity rows ~16 MiB (a month ~0.5 GiB, a month of IV rank).
HISTORY_CONTRACT_RETENTION_DAYS = env_int("HISTORY_CONTRACT_RETENTION_DAYS", 7, minimum=1)
HISTORY_EXPIRY_RETENTION_DAYS = env_int("HISTORY_EXPIRY_RETENTION_DAYS", 30, minimum=1)
if HISTORY_ENABLED:
    CELERY_BEAT_SCHEDULE |= {
        # A snapshot that waited longer than an interval in the queue (the history worker down) is not taken late:
        # the next one is on time.
        "history-record": {
            "task": "history.record_snapshots",
            "schedule": float(HISTORY_INTERVAL),
            "options": {"expires": float(HISTORY_INTERVAL)},
        },
        "history-prune": {"task": "history.prune", "schedule": 3600.0, "options": {"expires": 3600.0}},
    }

# --- HTTP -----------------------------------------------------------------------------
# Reverse proxies in front of the web processes, each appending the address it saw to X-Forwarded-For. With 0 the
# header is ignored and a client is its socket's address; with N, the N-th address from the right: any other entry
# is what the client wrote, and counting by it let one client rotate past every limit (issue #12). Every per-client
# count uses it (optionsite.throttling.client_address).
API_TRUSTED_PROXIES = env_int("API_TRUSTED_PROXIES", 0, minimum=0)
# Failed logins allowed per client and per username within the window (s), at /admin/login/, /api-auth/login/ and
# /api/token/; the next attempt answers 429 without checking its password (optionsite/login_throttle.py).
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 300, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "chain.renderers.ORJSONRenderer",
        # DRF's, showing the first rows of a long list (the full chain took 1.7 s to render there).
        "chain.renderers.ShortBrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chain.negotiation.FormatNegotiation",
    # DRF's defaults with JSON through orjson, which refuses a body nested too deep with a 400 (chain/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "chain.parsers.ORJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_THROTTLE_CLASSES": ["optionsite.throttling.AnonRedisRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": env_str("API_ANON_RATE", "1200/min")},
    # For DRF's own throttles, should a view use one; ours ask optionsite.throttling.client_address.
    "NUM_PROXIES": API_TRUSTED_PROXIES,
    "EXCEPTION_HANDLER": "chain.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bybit options chain tracker API",
    "DESCRIPTION": (
        "Live Bybit option chains (USDT- and USDC-settled) kept in Redis by the ingest worker. "
        "Numbers are JSON numbers; a value nobody quotes is null, never 0. Implied volatilities and 24 h "
        "changes are fractions as Bybit sends them (0.4896 is 48.96 %). Times: epoch milliseconds (`ts`, "
        "`delivery_ms`), ISO 8601 UTC (`expiry_at`), ages and times to expiry in seconds. See docs/api.md."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["chain.schema.drop_slashless_duplicates"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chain.schema.document_throttling",
        "chain.schema.document_unsupported_media_types",
    ],
    "ENUM_NAME_OVERRIDES": {"SettleEnum": ["USDT", "USDC"], "OptionTypeEnum": ["call", "put"]},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The chain page's charting library, installed from npm (package-lock.json, `npm ci`) and served
# from here like any static file: nothing is loaded from a CDN.
STATICFILES_DIRS = [("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

# --- Logging: one line per event on stdout --------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"()": "optionsite.logfmt.LineFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "line"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # pybit logs every (re)connect attempt at INFO; ours already say what matters.
        "pybit": {"level": "WARNING"},
        # websocket-client logs every dropped socket at ERROR; the feed logs it once, with context.
        "websocket": {"level": "CRITICAL"},
        "django.channels.server": {"level": "WARNING"},
        # "Task … received/succeeded" for every feed and refresh task says nothing.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
    },
}
