"""The Content-Security-Policy: every page iamportal renders, for whoever may
see it, carries the policy and nothing the policy would block (no inline
script, event handler, javascript: URL or inline style), and htmx is
configured to need neither eval nor inline script."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts import services as accounts_services
from accounts.models import (
    CloudResource,
    Database,
    DeniedCall,
    IamGroup,
    IamUser,
    ManagedPolicy,
    OrgAccount,
    OrgNode,
    RoleVersion,
    ServiceControlPolicy,
    SyncRun,
)
from accounts.usage.models import RemovalNotice, ServiceUsage
from brokering import cli_auth
from requests_app import services
from requests_app.models import PolicyRequest
from tests.factories import BUCKET_ARN, Inventory, client_for, submitted

pytestmark = pytest.mark.django_db

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class Inline(HTMLParser):
    """What a strict Content-Security-Policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.htmx_config: dict[str, Any] | None = None
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src"):
            self.blocked.append("<script> without src")
        if tag == "style":
            self.blocked.append("<style> element")
        if tag == "meta" and named.get("name") == "htmx-config":
            self.htmx_config = json.loads(named.get("content") or "{}")
        for name, value in attrs:
            if name.startswith("on"):
                self.blocked.append(f"<{tag} {name}=...>")
            if name == "style":
                self.blocked.append(f"<{tag} style=...>")
            if name.startswith("hx-on"):
                self.blocked.append(f"<{tag} {name}> (needs eval)")
            if value and re.match(r"\s*(javascript|vbscript):", value, re.I):
                self.blocked.append(f"<{tag} {name}={value[:30]}>")
            if value and name in ("hx-vals", "hx-headers") and value.lstrip().startswith("js:"):
                self.blocked.append(f"<{tag} {name}=js:...> (needs eval)")
            if value and name == "hx-trigger" and "[" in value:
                self.blocked.append(f"<{tag} hx-trigger filter> (needs eval)")


HTMX_CONFIG = {
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    # Back reloads from the server: restoring a snapshot re-applies style attributes.
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
}


def check(response: Any) -> Inline:
    assert response["Content-Security-Policy"] == POLICY
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    parser = Inline()
    parser.feed(response.content.decode())
    assert parser.blocked == [], response.request["PATH_INFO"]
    # Every page that loads htmx configures it.
    if "htmx.min.js" in response.content.decode():
        assert parser.htmx_config == HTMX_CONFIG
    return parser


@pytest.fixture(autouse=True)
def strict_policy(settings: Any) -> None:
    """The policy without the federation endpoint's origin, so it reads plainly."""
    policy = {key: list(value) for key, value in settings.CONTENT_SECURITY_POLICY.items()}
    policy["form-action"] = ["'self'"]
    settings.CONTENT_SECURITY_POLICY = policy


@pytest.fixture
def pending(requester: User, inv: Inventory) -> PolicyRequest:
    return submitted(requester, inv.api)


# --- every page -------------------------------------------------------------------

# Named routes that never render an HTML page of their own: JSON, redirects after
# an action, or the single sign-on hand-offs.
NOT_PAGES = {
    "api_console_url",
    "api_credentials",
    "api_databases",
    "api_database_token",
    "api_me",
    "api_policy_generate",
    "api_policy_lint",
    "api_request_approve",
    "api_request_cancel",
    "api_request_changes_create",
    "api_request_comment",
    "api_request_create",
    "api_request_detail",
    "api_request_list",
    "api_request_reject",
    "api_request_retry",
    "api_requests",
    "api_roles",
    "api_schema",
    "weep_get_credentials",
    "weep_get_resource_url",
    "weep_get_roles",
    "weep_get_roles_v2",
    "weep_typeahead",
    "cli_challenge_create",
    "cli_challenge_poll",
    "healthz",
    "metrics",
    "oidc_authentication_callback",
    "oidc_authentication_init",
    "oidc_logout",
    "logout",
    "api_token_create",
    "api_token_revoke",
    "account_sync",
    "role_refresh",
    "request_approve",
    "request_reject",
    "request_retry",
    "request_cancel",
    "request_comment",
    "request_extend",
    "change_edit",
    "request_template_add",
    "request_permission_remove",
    "policy_actions",
    "resource_request_access",
    "request_denied_call",
    "request_editor_discard",
    "role_console",
    "api_request_access_create",
    "access_grant_revoke",
    "policy_export",
}


def _names(resolver: URLResolver) -> Iterator[str]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":  # the admin is walked model by model below
                yield from _names(entry)
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry.name


def pages(inv: Inventory, pending: PolicyRequest, users: dict[str, User]) -> Iterator[Any]:
    """(route name, response) for every page, each rendered for who may see it."""
    alice, rita, admin_user = users["requester"], users["reviewer"], users["admin"]
    anonymous = Client()
    a, r, staff = client_for(alice), client_for(rita), client_for(users["superuser"])
    api, account = inv.api, inv.account
    role_pages = {"role_id": api.pk}
    policy = ManagedPolicy.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:policy/boundary",
        name="boundary",
        content_hash="x",
        synced_at=timezone.now(),
    )
    SyncRun.objects.create(account=account, status="running", progress=40)
    challenge = cli_auth.cli_challenge_create(requested_user="alice", requesting_ip="127.0.0.1")

    yield "login", anonymous.get(reverse("login"))
    yield "login_failed", anonymous.get(reverse("login_failed"))
    yield "profile", a.get(reverse("profile"))
    yield "status", a.get(reverse("status"))
    yield "my_roles", a.get(reverse("my_roles"))
    yield "my_roles", a.get(reverse("my_roles"), {"q": "pay"}, HTTP_HX_REQUEST="true")
    yield "my_role_cli", a.get(reverse("my_role_cli", args=[api.pk]))
    yield "my_role_credentials", a.post(reverse("my_role_credentials", args=[api.pk]))
    yield (
        "role_console_login",
        a.get(reverse("role_console_login", args=[api.arn]), HTTP_SEC_FETCH_SITE="cross-site"),
    )
    yield "role_console_login", a.get(reverse("role_console_login", args=["payments"]))
    yield "cli_challenge_validate", a.get(reverse("cli_challenge_validate", args=[challenge.token]))
    yield "cli_challenge_validate", a.get(reverse("cli_challenge_validate", args=["unknown"]))
    yield "my_activity", a.get(reverse("my_activity"))
    yield "weep_setup", a.get(reverse("weep_setup"))
    yield (
        "my_cli_sign_in",
        a.post(reverse("my_cli_sign_in", args=[challenge.pk]), {"action": "refuse"}, follow=True),
    )
    yield (
        "demo_federation",
        anonymous.get(reverse("demo_federation"), {"Action": "login", "SigninToken": "forged"}),
    )
    yield "dashboard", a.get(reverse("dashboard"))
    yield "account_list", a.get(reverse("account_list"))
    yield "account_detail", a.get(reverse("account_detail", args=[account.account_id]))
    yield "role_list", a.get(reverse("role_list"))
    yield "role_detail", a.get(reverse("role_detail", args=[account.account_id, api.name]))
    for tab in ("role_inline", "role_managed", "role_trust", "role_tags", "role_boundary"):
        yield tab, a.get(reverse(tab, args=[account.account_id, api.name]))
    yield (
        "role_sessions_revoke",
        a.get(reverse("role_sessions_revoke", args=[account.account_id, api.name])),
    )
    yield "role_history", a.get(reverse("role_history", args=[account.account_id, api.name]))
    version = RoleVersion.objects.create(
        role=api,
        account=api.account,
        role_arn=api.arn,
        role_name=api.name,
        part=RoleVersion.Part.TAGS,
        document={"team": "payments"},
        recorded_at=timezone.now(),
        source=RoleVersion.Source.OUTSIDE,
    )
    yield (
        "role_version_restore",
        a.get(reverse("role_version_restore", args=[account.account_id, api.name, version.pk])),
    )
    yield (
        "role_edits_collected",
        a.get(reverse("role_edits_collected", args=[account.account_id, api.name])),
    )
    for part in ("inline", "managed", "trust", "tags", "boundary"):
        editor = reverse("role_part_edit", args=[account.account_id, api.name, part])
        yield "role_part_edit", a.get(editor)
    yield (
        "role_part_edit",
        a.post(
            reverse("role_part_edit", args=[account.account_id, api.name, "tags"]),
            {"tags": "iamportal-authorized=engineering", "action": "preview"},
        ),
    )
    yield "role_create", a.get(reverse("role_create"), {"account": account.account_id})
    yield (
        "role_create",
        a.post(
            reverse("role_create"),
            {
                "account": account.account_id,
                "name": "reports-builder",
                "path": "/",
                "max_session_duration": "3600",
                "trust_preset": "service",
                "trust_value": "lambda.amazonaws.com",
                "justification": "Reports move to Lambda.",
                "preview": "1",
            },
        ),
    )
    yield "role_clone", a.get(reverse("role_clone", args=[account.account_id, api.name]))
    yield "role_delete", a.get(reverse("role_delete", args=[account.account_id, api.name]))
    yield (
        "role_settings_edit",
        a.get(reverse("role_settings_edit", args=[account.account_id, api.name])),
    )
    ServiceUsage.objects.create(
        role=api,
        namespace="s3",
        actions=[{"action": "s3:getobject", "last_accessed_at": None, "entity": "", "region": ""}],
        content_hash="x",
    )
    RemovalNotice.objects.create(
        role=api,
        removals=[{"kind": "inline", "key": "p", "label": "inline policy p", "services": ["s3"]}],
        created_at=timezone.now(),
        remove_after=timezone.now(),
    )
    yield "role_usage", a.get(reverse("role_usage", args=[account.account_id, api.name]))
    yield "role_detail", a.get(reverse("role_detail", args=[account.account_id, api.name]))
    yield "role_list", a.get(reverse("role_list"), {"usage": "unused"})
    yield "resource_list", a.get(reverse("resource_list"))
    yield (
        "resource_detail",
        a.get(
            reverse("resource_detail", args=[CloudResource.objects.filter(account=account)[0].pk])
        ),
    )
    config_resource = CloudResource.objects.create(
        account=account,
        arn=f"arn:aws:dynamodb:us-east-1:{account.account_id}:table/orders",
        name="orders",
        type="AWS::DynamoDB::Table",
        source=CloudResource.Source.CONFIG,
        summary={"tableStatus": "ACTIVE"},
        changed_in_aws_at=timezone.now(),
        content_hash="x",
        synced_at=timezone.now(),
    )
    yield "resource_list", a.get(reverse("resource_list"), {"type": config_resource.type})
    yield "resource_detail", a.get(reverse("resource_detail", args=[config_resource.pk]))
    yield "policy_detail", a.get(reverse("policy_detail", args=[policy.pk]))
    yield "managed_policy_edit", a.get(reverse("managed_policy_edit", args=[policy.pk]))
    bucket = CloudResource.objects.filter(account=account)[0]
    yield "resource_policy_edit", a.get(reverse("resource_policy_edit", args=[bucket.pk]))
    yield (
        "resource_policy_edit",
        a.post(
            reverse("resource_policy_edit", args=[bucket.pk]),
            {
                "role": api.pk,
                "document": '{"Version": "2012-10-17", "Statement": []}',
                "action": "preview",
            },
        ),
    )
    synced = {"content_hash": "x", "synced_at": timezone.now()}
    iam_user = IamUser.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:user/deploy-bot",
        name="deploy-bot",
        groups=["deployers"],
        access_keys=[{"id": "AKIAEXAMPLE", "status": "Active", "created": "2026-01-01T00:00:00"}],
        **synced,
    )
    group = IamGroup.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:group/deployers",
        name="deployers",
        members=["deploy-bot"],
        **synced,
    )
    database = Database.objects.create(
        account=account,
        arn=f"arn:aws:rds:us-east-1:{account.account_id}:db:payments-db",
        name="payments-db",
        type="rds-instance",
        region="us-east-1",
        iam_auth=True,
        **synced,
    )
    OrgNode.objects.create(node_id="r-1", kind="root", arn="r", name="Root", path="Root", **synced)
    OrgAccount.objects.create(account_id=account.account_id, name="p", parent_id="r-1", **synced)
    ServiceControlPolicy.objects.create(
        policy_id="p-1", arn="p", name="deny", document={"Statement": []}, targets=["r-1"], **synced
    )
    yield "iam_user_list", a.get(reverse("iam_user_list"), {"q": "deploy"})
    yield "iam_user_list", a.get(reverse("iam_user_list"), {"kind": "groups"})
    yield (
        "iam_user_detail",
        a.get(reverse("iam_user_detail", args=[account.account_id, iam_user.name])),
    )
    yield "group_detail", a.get(reverse("group_detail", args=[account.account_id, group.name]))
    yield "database_detail", a.get(reverse("database_detail", args=[database.pk]))
    yield "database_list", a.get(reverse("database_list"))
    yield (
        "database_password",
        a.post(reverse("database_password", args=[database.pk]), {"db_user": "bad user"}),
    )
    accounts_services.inventory_entries_refresh(account=account)
    yield "policy_list", a.get(reverse("policy_list"))
    yield "policy_list", a.get(reverse("policy_list"), {"public": "on", "tag": "team"})
    yield "policy_list", a.get(reverse("policy_list"), {"type": "s3"}, HTTP_HX_REQUEST="true")
    yield "policy_list", a.get(reverse("policy_list"), {"unchanged_days": "x"})
    yield "inventory_search", a.get(reverse("inventory_search"))
    yield "inventory_search", a.get(reverse("inventory_search"), {"q": "pay"})
    yield "inventory_search", a.get(reverse("inventory_search"), {"q": "zebra"})
    yield "account_detail", a.get(reverse("account_detail", args=[account.account_id]))
    yield "role_detail", a.get(reverse("role_detail", args=[account.account_id, api.name]))
    now = timezone.now()
    for session, action in (("alice@example.com", "s3:GetObject"), ("bob", "iam:PutRolePolicy")):
        DeniedCall.objects.create(
            role=api,
            session_name=session,
            action=action,
            resource=f"arn:aws:s3:::acme-prod-payments-data/{session}",
            key=session,
            error_code="AccessDenied",
            count=1,
            first_seen=now,
            last_seen=now,
        )
    yield "role_detail", r.get(reverse("role_detail", args=[account.account_id, api.name]))
    yield "my_roles", a.get(reverse("my_roles"))
    yield "request_list", a.get(reverse("request_list"))
    yield "request_detail", a.get(reverse("request_detail", args=[pending.pk]))
    yield "request_detail", r.get(reverse("request_detail", args=[pending.pk]))
    yield "request_queue", r.get(reverse("request_queue"))
    yield "request_new", a.get(reverse("request_new"))
    yield "access_request_new", a.get(reverse("access_request_new"), {"q": "pay"})
    yield "access_request_new", a.get(reverse("access_request_new"), {"role": api.pk})
    yield (
        "access_request_new",
        a.post(reverse("access_request_new") + f"?role={api.pk}", {"duration": "8h"}),
    )
    access = services.access_request_submit(
        requester=alice, role=api, justification="On call.", duration=timedelta(hours=8)
    )
    yield "request_detail", r.get(reverse("request_detail", args=[access.pk]))
    yield "request_permissions", a.get(reverse("request_permissions", kwargs=role_pages))
    yield (
        "request_resources",
        a.get(reverse("request_resources", kwargs=role_pages), {"service": "s3", "q": "acme"}),
    )
    yield "request_editor", a.get(reverse("request_editor", kwargs=role_pages))
    yield (
        "request_editor_lint",
        a.post(reverse("request_editor_lint", kwargs=role_pages), {"document": "{"}),
    )
    yield (
        "request_permission_add",
        a.post(reverse("request_permission_add", kwargs=role_pages), {"service": "s3"}),
    )
    a.post(
        reverse("request_permission_add", kwargs=role_pages),
        {"service": "s3", "resource": BUCKET_ARN, "access": ["list", "read"]},
    )
    yield "request_review", a.get(reverse("request_review", kwargs=role_pages))
    yield "request_review", a.post(reverse("request_review", kwargs=role_pages), {"action": "x"})
    yield "api_docs", a.get(reverse("api_docs"))
    # The error pages.
    yield "404", a.get("/nothing-here/")
    yield "404", anonymous.get("/nothing-here/")
    csrf = client_for(alice)
    csrf.handler.enforce_csrf_checks = True
    yield "403_csrf", csrf.post(reverse("request_comment", args=[pending.pk]), {"body": "x"})
    refused = a.post(reverse("role_console", args=[api.pk]), {"redirect": "https://evil.example/"})
    assert "That console link is not allowed" in refused.content.decode()
    yield "console_refused", refused
    # The admin: its login page and, for every model, the list and the form.
    yield "admin", anonymous.get(reverse("admin:login"))
    yield "admin", staff.get(reverse("admin:index"))
    yield "admin", client_for(admin_user).get(reverse("admin:index"))
    for model in admin.site._registry:
        meta = model._meta
        yield "admin", staff.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        add = staff.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
        if add.status_code != 403:  # models nobody adds by hand
            yield "admin", add
    yield "admin", staff.get(reverse("admin:requests_app_policyrequest_change", args=[pending.pk]))


def test_every_page_carries_the_policy_and_nothing_it_would_block(
    inv: Inventory,
    pending: PolicyRequest,
    requester: User,
    reviewer: User,
    admin_user: User,
    superuser: User,
    settings: Any,
) -> None:
    settings.DEBUG = False
    settings.IAMPORTAL_DEMO_FEDERATION = True
    users = {
        "requester": requester,
        "reviewer": reviewer,
        "admin": admin_user,
        "superuser": superuser,
    }
    seen = set()
    for name, response in pages(inv, pending, users):
        assert response.status_code < 500, name
        check(response)
        seen.add(name)
    routes = set(_names(get_resolver()))
    assert routes - NOT_PAGES <= seen, "pages without a CSP check"
    assert {"404", "403_csrf", "console_refused", "admin"} <= seen


def test_the_server_error_page_carries_the_policy(
    requester: User, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = False
    from brokering import views

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(views.selectors, "roles_for_user", broken)
    client = client_for(requester)
    client.raise_request_exception = False
    response = client.get(reverse("my_roles"))

    assert response.status_code == 500
    check(response)


def test_the_vendored_htmx_knows_the_settings_the_pages_give_it() -> None:
    htmx = (django_settings.BASE_DIR / "static" / "htmx.min.js").read_text()
    assert 'version:"2.' in htmx
    for key in HTMX_CONFIG:
        assert key in htmx


# --- the policy's settings -----------------------------------------------------------


def test_the_console_federation_endpoint_may_receive_the_console_form(
    settings: Any, requester: User
) -> None:
    from importlib import reload

    from iamportal import settings as iamportal_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IAMPORTAL_FEDERATION_URL", "https://signin.aws.amazon.com/federation")
        patch.setenv("IAMPORTAL_CSP_EXTRA", "form-action https://sso.example.com; img-src https:")
        policy = reload(iamportal_settings).CONTENT_SECURITY_POLICY
    reload(iamportal_settings)

    assert policy["form-action"] == [
        "'self'",
        "https://signin.aws.amazon.com",
        "https://sso.example.com",
    ]
    assert policy["img-src"] == ["'self'", "data:", "https:"]
    settings.CONTENT_SECURITY_POLICY = policy
    header = client_for(requester).get(reverse("profile"))["Content-Security-Policy"]
    assert "form-action 'self' https://signin.aws.amazon.com https://sso.example.com" in header


def test_a_malformed_policy_extension_stops_start_up() -> None:
    from importlib import reload

    from django.core.exceptions import ImproperlyConfigured

    from iamportal import settings as iamportal_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IAMPORTAL_CSP_EXTRA", "form-action")
        with pytest.raises(ImproperlyConfigured, match="IAMPORTAL_CSP_EXTRA"):
            reload(iamportal_settings)
    reload(iamportal_settings)
