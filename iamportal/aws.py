"""The AWS boundary: the only module that builds boto3 sessions and clients.

iamportal runs as the *hub* identity (whatever credentials boto3 finds: an
instance profile, a task role, environment variables). For each onboarded
account it assumes the *spoke* role to read inventory and apply changes.
"""

from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
import requests
from botocore.config import Config
from botocore.hooks import HierarchicalEmitter
from django.conf import settings

from iamportal import embedded_advisor

if TYPE_CHECKING:
    from accounts.models import AwsAccount

# Spoke credentials are reused until this long before they expire.
_REFRESH_MARGIN = timedelta(minutes=5)
SPOKE_SESSION_NAME = "iamportal"
SPOKE_SESSION_SECONDS = 3600

_lock = threading.RLock()
_hub: boto3.Session | None = None
# Clients of the hub session, reused: building one costs milliseconds, and
# botocore clients are safe to share between threads.
_hub_clients: dict[tuple[Any, ...], Any] = {}
# Clients of every other session (a spoke's, an organisation's), reused for as long
# as their session lives: a sync or an apply asks for the same few many times.
_session_clients: weakref.WeakKeyDictionary[boto3.Session, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _CachedSpoke:
    session: boto3.Session
    expires_at: datetime


_spokes: dict[tuple[str, str], _CachedSpoke] = {}

# One loader for every session: it caches the service models it reads, so a new
# session (one per spoke account) builds its clients in milliseconds instead of
# parsing the same JSON models again.
_loader = botocore.loaders.create_loader()
# botocore's built-in event handlers, registered once: a new session starts from a
# copy of them instead of registering (and aliasing) each of them again.
_builtin_events: HierarchicalEmitter | None = None


def _session_events() -> HierarchicalEmitter:
    global _builtin_events
    with _lock:
        if _builtin_events is None:
            _builtin_events = HierarchicalEmitter()
            botocore.session.Session(event_hooks=_builtin_events)
        return copy.copy(_builtin_events)


def new_session(**credentials: Any) -> boto3.Session:
    """A boto3 session sharing the process's model loader; keyword arguments are
    those of `boto3.Session` (credentials, region_name)."""
    core = botocore.session.Session(event_hooks=_session_events(), include_builtin_handlers=False)
    core.register_component("data_loader", _loader)
    return boto3.Session(botocore_session=core, **credentials)


def default_region() -> str:
    """The region of the hub's clients, and of anything without a region of its own."""
    return str(settings.AWS_REGION)


def client_config() -> Config:
    options: dict[str, Any] = {
        "retries": {"mode": "adaptive", "total_max_attempts": settings.AWS_MAX_ATTEMPTS},
        "connect_timeout": settings.AWS_CONNECT_TIMEOUT,
        "read_timeout": settings.AWS_READ_TIMEOUT,
        "user_agent_extra": "iamportal",
    }
    if settings.AWS_ENDPOINT_URL:
        # Stand-ins on loopback have no per-bucket host names.
        options["s3"] = {"addressing_style": "path"}
    return Config(**options)


def hub_session() -> boto3.Session:
    global _hub
    with _lock:
        if _hub is None:
            _hub = new_session(region_name=default_region())
        return _hub


def client(service: str, *, session: boto3.Session | None = None, region: str | None = None) -> Any:
    """A client for `service` from `session` (default: the hub), honouring the
    endpoint override and the retry policy; one per session, service and region."""
    region = region or default_region()
    key = (
        service,
        region,
        settings.AWS_ENDPOINT_URL,
        settings.AWS_MAX_ATTEMPTS,
        settings.AWS_CONNECT_TIMEOUT,
        settings.AWS_READ_TIMEOUT,
    )
    with _lock:
        if session is None or session is _hub:
            clients = _hub_clients
            session = hub_session()
        else:
            clients = _session_clients.setdefault(session, {})
        cached = clients.get(key)
        if cached is None:
            cached = clients[key] = _build_client(session, service, region)
        return cached


def _build_client(session: boto3.Session, service: str, region: str) -> Any:
    built = session.client(
        service,
        region_name=region,
        endpoint_url=settings.AWS_ENDPOINT_URL,
        config=client_config(),
    )
    if service == "iam" and settings.IAMPORTAL_EMBEDDED_AWS:
        # The embedded AWS has no Access Advisor: answered at this boundary.
        embedded_advisor.install(built)
    return built


def on_hub_call(event: str, handler: Any) -> None:
    """Hook every hub client, present and future, into a botocore event
    (used to observe or refuse calls at the AWS boundary in tests)."""
    with _lock:
        hub_session().events.register(event, handler)
        for cached in _hub_clients.values():
            cached.meta.events.register(event, handler)


def on_session_call(session: boto3.Session, event: str, handler: Any) -> None:
    """Hook every client of `session` (a spoke's), present and future, into a
    botocore event (used to observe or refuse calls at the AWS boundary in tests)."""
    with _lock:
        session.events.register(event, handler)
        for cached in _session_clients.get(session, {}).values():
            cached.meta.events.register(event, handler)


def role_arn(account_id: str, role_name: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{role_name}"


def spoke_session(account: AwsAccount) -> boto3.Session:
    """A session acting as the account's spoke role.

    The assumed credentials are cached per role (and external id) until shortly
    before they expire, so a sync, a refresh and an apply share one AssumeRole.
    Raises botocore's ClientError when the role cannot be assumed.
    """
    external_id = account.external_id or settings.IAMPORTAL_SPOKE_EXTERNAL_ID
    return _assumed_session(account.spoke_role_arn, external_id)


def _assumed_session(arn: str, external_id: str = "") -> boto3.Session:
    key = (arn, external_id)
    now = datetime.now(UTC)
    with _lock:
        cached = _spokes.get(key)
        if cached and cached.expires_at - _REFRESH_MARGIN > now:
            return cached.session
    params: dict[str, Any] = {
        "RoleArn": arn,
        "RoleSessionName": SPOKE_SESSION_NAME,
        "DurationSeconds": SPOKE_SESSION_SECONDS,
    }
    if external_id:
        params["ExternalId"] = external_id
    credentials = client("sts").assume_role(**params)["Credentials"]
    session = new_session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=default_region(),
    )
    expires_at = credentials["Expiration"]
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    with _lock:
        _spokes[key] = _CachedSpoke(session=session, expires_at=expires_at)
    return session


def organization_session() -> boto3.Session:
    """The session that reads the AWS Organization: the role IAMPORTAL_ORG_ROLE_NAME
    in the account IAMPORTAL_ORG_ACCOUNT_ID, or the hub itself when no role is named."""
    name = settings.IAMPORTAL_ORG_ROLE_NAME
    if not name:
        return hub_session()
    credentials = client("sts").assume_role(
        RoleArn=role_arn(settings.IAMPORTAL_ORG_ACCOUNT_ID, name),
        RoleSessionName=SPOKE_SESSION_NAME,
        DurationSeconds=SPOKE_SESSION_SECONDS,
    )["Credentials"]
    return new_session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=default_region(),
    )


def config_client() -> Any:
    """A client of AWS Config in the account and region of the aggregator
    (IAMPORTAL_CONFIG_*): the role IAMPORTAL_CONFIG_ROLE_NAME there, or the hub
    itself when no role is named. The assumed credentials are cached like a
    spoke's, so a schedule's account syncs share one AssumeRole."""
    name = settings.IAMPORTAL_CONFIG_ROLE_NAME
    region = settings.IAMPORTAL_CONFIG_REGION
    if not name:
        return client("config", region=region)
    session = _assumed_session(role_arn(settings.IAMPORTAL_CONFIG_ACCOUNT_ID, name))
    return client("config", session=session, region=region)


def forget_sessions() -> None:
    """Drop every cached session (tests, and after the endpoint changes)."""
    global _hub
    with _lock:
        _hub = None
        _spokes.clear()
        _hub_clients.clear()
        _session_clients.clear()


# moto's control API: in-process (tests) it answers at this address; a moto server
# answers at its own endpoint.
_EMBEDDED_CONTROL_URL = "http://motoapi.amazonaws.com"


def embedded_aws_seed(*, seed: int) -> None:
    """Seed the embedded AWS's (moto's) generator of ids: what it creates next gets
    the same ids on every run. Only for the demo organisation, after it has made
    sure it talks to the embedded AWS."""
    base = settings.AWS_ENDPOINT_URL or _EMBEDDED_CONTROL_URL
    with requests.Session() as http:
        http.trust_env = False  # loopback: no proxy from the environment
        response = http.post(f"{base}/moto-api/seed", params={"a": str(seed)}, timeout=10)
    response.raise_for_status()
