"""Plain functions that build what the tests stand on: users and their clients,
accounts and roles (in the database, and in the embedded AWS), requests in
their states, and the small wizard inventory.

Fixtures live in the conftest.py files; a test module imports helpers from
here and from nowhere else in tests/.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.servers.basehttp import WSGIRequestHandler
from django.db import connections
from django.http.response import HttpResponseBase
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole, SyncRun
from accounts.services import (
    account_add,
    account_sync_request,
    inventory_fetch,
    inventory_write,
)
from accounts.usage import services as usage_services
from accounts.usage.models import AdvisorRun
from iamportal import aws, demo
from iamportal.auth import user_groups_sync
from iamportal.services import api_token_create
from requests_app import services
from requests_app.models import PolicyRequest, PolicyTemplate
from requests_app.revision import revision_of_request

if TYPE_CHECKING:
    from playwright.sync_api import Page

# --- users ---------------------------------------------------------------------------

PASSWORD = "correct-horse-battery-staple"


def make_user(username: str, *groups: str, **extra: object) -> User:
    """A user whose groups went through the same sync as a real sign-in."""
    user = User.objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD, **extra
    )
    user_groups_sync(user=user, group_names=groups)
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client(user: User) -> Client:
    """A script calling the REST API with the user's personal token."""
    _, raw = api_token_create(user=user, name="script", expires_in_days=1)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def flashed(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def html_of(message: EmailMessage) -> str:
    assert isinstance(message, EmailMultiAlternatives)
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(content)


# --- accounts and roles in the embedded AWS -------------------------------------------

ECS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

# One administrator session per account and test, and one client per service and
# region of it: a new session assumes a role, and a client costs milliseconds to
# build. Emptied after every test (the AWS is new).
_admin_sessions: dict[str, Any] = {}
_admin_clients: dict[tuple[str, str, str | None], Any] = {}


def forget_admin_sessions() -> None:
    _admin_sessions.clear()
    _admin_clients.clear()


def admin_client(account_id: str, service: str, region: str | None = None) -> Any:
    """A client with an administrator of the account: how tests look at AWS."""
    key = (account_id, service, region)
    if key not in _admin_clients:
        if account_id not in _admin_sessions:
            _admin_sessions[account_id] = demo.account_session(account_id)
        _admin_clients[key] = aws.client(
            service, session=_admin_sessions[account_id], region=region
        )
    return _admin_clients[key]


def admin_iam(account_id: str) -> Any:
    return admin_client(account_id, "iam")


def account_create(name: str, *, environment: str = "", approvals: int | None = None) -> AwsAccount:
    """A member account of the organisation (which must exist), with iamportal's
    spoke role in it, onboarded."""
    org = aws.client("organizations")
    status = org.create_account(Email=f"aws-{name}@example.com", AccountName=name)
    account_id = status["CreateAccountStatus"]["AccountId"]
    demo.spoke_role_create(admin_iam(account_id))
    return account_add(
        account_id=account_id, name=name, environment=environment, approvals_required=approvals
    )


def role_in(account: AwsAccount, name: str, *, in_aws: bool = True) -> IamRole:
    if in_aws:
        admin_iam(account.account_id).create_role(RoleName=name, AssumeRolePolicyDocument=ECS_TRUST)
    return IamRole.objects.create(
        account=account,
        arn=aws.role_arn(account.account_id, name),
        name=name,
        content_hash="x",
        synced_at=timezone.now(),
    )


def synced(account: AwsAccount) -> None:
    """The account's inventory as a sync would leave it (without a sync run)."""
    inventory_write(account=account, inventory=inventory_fetch(account))


def sync(account: AwsAccount) -> SyncRun:
    """Ask for a sync of the account and run it, as a worker would at commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = account_sync_request(account=account)
    run.refresh_from_db()
    return run


def policy_in_aws(role: IamRole, name: str) -> Any:
    iam = admin_iam(role.account.account_id)
    return iam.get_role_policy(RoleName=role.name, PolicyName=name)["PolicyDocument"]


def inline_names(role: IamRole) -> list[str]:
    iam = admin_iam(role.account.account_id)
    return list(iam.list_role_policies(RoleName=role.name)["PolicyNames"])


# --- requests ------------------------------------------------------------------------

READ_INVOICES = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadInvoices",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::acme-invoices/*"],
        }
    ],
}
OTHER_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}],
}


def submitted(
    user: User,
    role: IamRole,
    *,
    policy_name: str | None = "invoices-read",
    document: dict[str, Any] = READ_INVOICES,
    justification: str = "Monthly invoice export.",
) -> PolicyRequest:
    """A pending request from `user`: one inline policy (`document`) for `role`,
    named by the service when `policy_name` is None."""
    preview = services.policy_request_preview(
        role=role, document=document, justification=justification, policy_name=policy_name
    )
    return services.policy_request_submit(requester=user, preview=preview)


def approve(request: PolicyRequest, reviewer: User) -> PolicyRequest:
    """Approve the request as it is now, as a reviewer who just read it."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk, reviewer=reviewer, revision=revision_of_request(request.pk)
        )
    request.refresh_from_db()
    return request


def kinds(request: PolicyRequest) -> list[str]:
    return list(request.events.values_list("kind", flat=True))


def requiring_two(role: IamRole) -> IamRole:
    """The role, in an account that now asks for two approvals."""
    AwsAccount.objects.filter(pk=role.account_id).update(approvals_required=2)
    role.account.refresh_from_db()
    return role


def admin_action(user: User, action: str, *requests: PolicyRequest, **extra: str) -> Any:
    data = {"action": action, "_selected_action": [str(r.pk) for r in requests], **extra}
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client_for(user).post(reverse("admin:requests_app_policyrequest_changelist"), data)


# --- the wizard's inventory (database only) ------------------------------------------

PROD = "111111111111"
BUCKET = "acme-prod-payments-data"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{PROD}:payments-events"
EVENTS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}],
}


def make_role(account: AwsAccount, name: str, *, path: str = "/", **extra: Any) -> IamRole:
    """A role as a sync would write it: its ARN from the account, path and name."""
    extra.setdefault("synced_at", timezone.now())
    return IamRole.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:role{path}{name}",
        name=name,
        path=path,
        content_hash="x",
        **extra,
    )


@dataclass
class Inventory:
    account: AwsAccount
    api: IamRole  # alice may use it (team-payments)
    readonly: IamRole  # nobody may use it
    template: PolicyTemplate


def inventory() -> Inventory:
    account = AwsAccount.objects.create(account_id=PROD, name="acme-prod", environment="prod")
    now = timezone.now()

    def role(name: str, path: str = "/", **extra: Any) -> IamRole:
        return make_role(account, name, path=path, synced_at=now, **extra)

    api = role(
        "payments-api",
        "/service/",
        inline_policies={"payments-events": EVENTS_POLICY},
        tags={"iamportal-authorized": "team-payments"},
    )
    readonly = role("ReadOnly")
    for type_, name, arn in (
        ("s3", BUCKET, BUCKET_ARN),
        ("s3", "acme-prod-audit-logs", "arn:aws:s3:::acme-prod-audit-logs"),
        ("sqs", "payments-events", QUEUE_ARN),
        ("sns", "payments-alerts", f"arn:aws:sns:us-east-1:{PROD}:payments-alerts"),
    ):
        CloudResource.objects.create(
            account=account, arn=arn, name=name, type=type_, content_hash="x", synced_at=now
        )
    template = PolicyTemplate.objects.create(
        name="Read objects in a bucket",
        parameters=[{"name": "bucket", "label": "Bucket name"}],
        document=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadObjects",
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::{{bucket}}/*",
                    }
                ],
            }
        ),
    )
    return Inventory(account=account, api=api, readonly=readonly, template=template)


def big_policy(size: int) -> dict[str, Any]:
    """A valid policy of about `size` compact characters."""
    statements: list[dict[str, Any]] = []
    n = 0
    while len(json.dumps(statements, separators=(",", ":"))) < size - 60:
        statements.append(
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::acme-archive-{n:05}/*",
            }
        )
        n += 1
    return {"Version": "2012-10-17", "Statement": statements}


# --- the brokering inventory (the `org` fixture) ---------------------------------------

DEV = "222222222222"


@dataclass
class Org:
    prod: AwsAccount
    dev: AwsAccount
    roles: dict[str, IamRole]

    def arn(self, key: str) -> str:
        return self.roles[key].arn


# --- the AWS federation endpoint on loopback (the `federation` fixture) ---------------


@dataclass
class Federation:
    url: str
    sessions: list[dict[str, str]] = field(default_factory=list)
    # Every request's method and URL, as a proxy or an access log would see them.
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False


# --- racing workers (PostgreSQL) ---------------------------------------------------------


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions in threads released at the same moment; each result is the
    return value or the exception raised."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(i: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = action()
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


# --- single sign-on at the loopback OpenID provider (the `provider` fixture) ----------

OIDC_CLIENT_ID = "iamportal"


def at_provider(provider: str, sub: str, **claims: Any) -> None:
    """Create or replace the subject's account at the provider."""
    httpx.put(f"{provider}/users/{sub}", json=claims).raise_for_status()


def dana_at_provider(provider: str, *groups: str, **claims: Any) -> None:
    at_provider(
        provider,
        "dana",
        **{
            "email": "Dana@Example.com",
            "email_verified": True,
            "given_name": "Dana",
            "family_name": "Scully",
            "groups": list(groups),
            **claims,
        },
    )


def start_sign_in(client: Client) -> str:
    response = client.get(reverse("oidc_authentication_init"))
    assert response.status_code == 302
    return str(response["Location"])


def sign_in_at_provider(authorization_url: str, **form: str) -> str:
    """What the provider's sign-in form does; returns where it sends the browser."""
    answer = httpx.post(authorization_url, data=form, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def back_at_iamportal(client: Client, url: str) -> HttpResponseBase:
    parts = urlsplit(url)
    assert parts.path == reverse("oidc_authentication_callback")
    response: HttpResponseBase = client.get(f"{parts.path}?{parts.query}")
    return response


# --- what the log shows (the `log_output` fixture) --------------------------------------


class Served(Client):
    """A browser or CLI whose every request runserver would log as a request line."""

    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        query = request.get("QUERY_STRING", "")
        line = f"{request['REQUEST_METHOD']} {request['PATH_INFO']}{'?' + query if query else ''}"
        handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
        handler.request = None  # type: ignore[assignment]
        handler.client_address = ("127.0.0.1", 0)
        handler.requestline = f"{line} HTTP/1.1"
        handler.log_request(response.status_code, len(response.content))
        return response


# --- the browser tests ----------------------------------------------------------------------


def settled(page: Page) -> None:
    """htmx wires up swapped-in content when it settles: act on it only then."""
    page.wait_for_function(
        "() => !document.querySelector("
        "'.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


# --- usage (Access Advisor) -------------------------------------------------------------


def days_ago(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


def advisor_pass(account: AwsAccount) -> AdvisorRun:
    """Queue a pass over the account and run it, as a worker would at commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = usage_services.advisor_run_request(account=account)
    run.refresh_from_db()
    return run
