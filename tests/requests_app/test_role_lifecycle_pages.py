"""The role lifecycle pages (create, clone, delete, description and session
duration): who may open them, Preview then Submit by plain POST and by htmx,
errors as form errors, and the request they file applied against the embedded
AWS once a reviewer approves it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse

from accounts.models import AwsAccount, IamRole
from accounts.services import role_refresh
from requests_app import services
from requests_app.models import PolicyRequest
from tests.factories import admin_iam, approve, client_for, flashed, role_in

READ = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-reports/*"}
    ],
}

pytestmark = pytest.mark.django_db

CAST = ("requester", "reviewer", "admin_user", "outsider")
HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    found = role_in(account, "payments-api")
    admin_iam(account.account_id).put_role_policy(
        RoleName="payments-api",
        PolicyName="events-send",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sqs:SendMessage",
                        "Resource": f"arn:aws:sqs:us-east-1:{account.account_id}:events",
                    }
                ],
            }
        ),
    )
    role_refresh(role=found)
    found.refresh_from_db()
    return found


def urls(role: IamRole) -> dict[str, str]:
    args = [role.account.account_id, role.name]
    return {
        "create": reverse("role_create"),
        "clone": reverse("role_clone", args=args),
        "delete": reverse("role_delete", args=args),
        "settings": reverse("role_settings_edit", args=args),
    }


def create_form(where: AwsAccount, **overrides: str) -> dict[str, str]:
    return {
        "account": where.account_id,
        "name": "reports-builder",
        "path": "/",
        "description": "Builds the monthly reports",
        "max_session_duration": "7200",
        "trust_preset": "service",
        "trust_value": "lambda.amazonaws.com",
        "tags": "team=payments",
        "grant_me": "on",
        "justification": "The reports job moves to Lambda.",
        "preview": "1",
        **overrides,
    }


def exists(account: AwsAccount, name: str) -> bool:
    try:
        admin_iam(account.account_id).get_role(RoleName=name)
    except ClientError:
        return False
    return True


# --- the cast ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["create", "clone", "delete", "settings"])
def test_anonymous_visitors_are_sent_to_sign_in(
    anonymous: Client, role: IamRole, page: str
) -> None:
    url = urls(role)[page]
    for response in (anonymous.get(url), anonymous.post(url, {"name": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not PolicyRequest.objects.exists()


@pytest.mark.parametrize("who", CAST)
@pytest.mark.parametrize("page", ["create", "clone", "delete", "settings"])
def test_everyone_signed_in_may_ask_and_reviewers_decide(
    request: pytest.FixtureRequest, role: IamRole, who: str, page: str
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).get(urls(role)[page])
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


@pytest.mark.parametrize("who", CAST)
@pytest.mark.parametrize("page", ["clone", "delete", "settings"])
def test_a_role_outside_the_inventory_is_404_for_everyone(
    request: pytest.FixtureRequest, account: AwsAccount, who: str, page: str
) -> None:
    user: User = request.getfixturevalue(who)
    url = reverse(
        f"role_{'settings_edit' if page == 'settings' else page}",
        args=[account.account_id, "ghost"],
    )
    assert client_for(user).get(url).status_code == 404
    assert client_for(user).post(url, {}).status_code == 404


@pytest.mark.parametrize("who", CAST)
def test_a_request_from_anyone_waits_for_a_reviewer(
    request: pytest.FixtureRequest, account: AwsAccount, who: str
) -> None:
    user: User = request.getfixturevalue(who)
    form = create_form(account, preview="", submit="1")
    response = client_for(user).post(reverse("role_create"), form)
    assert response.status_code == 302
    created = PolicyRequest.objects.get()
    assert (created.requester, created.status) == (user, PolicyRequest.Status.PENDING)
    assert not exists(account, "reports-builder")


def test_a_requester_cannot_approve_their_own_creation(
    requester: User, account: AwsAccount
) -> None:
    client_for(requester).post(reverse("role_create"), create_form(account, submit="1"))
    created = PolicyRequest.objects.get()
    with pytest.raises(services.RequestActionForbidden):
        services.policy_request_approve(
            request_id=created.pk, reviewer=requester, revision=created.revision
        )


# --- create ------------------------------------------------------------------------------


def test_create_previews_then_submits_and_a_reviewer_gets_the_role_made(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    client = client_for(requester)
    page = client.get(reverse("role_create"), {"account": account.account_id}).content.decode()
    assert f'<option value="{account.account_id}" selected>' in page
    assert 'name="submit"' not in page  # nothing to submit before a preview

    response = client.post(reverse("role_create"), create_form(account))
    text = response.content.decode()
    assert response.status_code == 200
    assert "Dry run: this is exactly what would be requested" in text
    assert "Create role reports-builder" in text
    assert "lambda.amazonaws.com" in text
    assert "alice@example.com" in text  # the access tag the requester asked for
    assert 'name="submit"' in text
    assert not PolicyRequest.objects.exists()

    response = client.post(reverse("role_create"), create_form(account, submit="1"))
    created = PolicyRequest.objects.get()
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert flashed(response) == [
        f"Request #{created.pk} is submitted: it creates the role "
        f"arn:aws:iam::{account.account_id}:role/reports-builder."
    ]
    page = client.get(reverse("request_detail", args=[created.pk])).content.decode()
    assert "Create role reports-builder" in page

    approve(created, reviewer)
    role = admin_iam(account.account_id).get_role(RoleName="reports-builder")["Role"]
    assert role["MaxSessionDuration"] == 7200
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
        "team": "payments",
        "iamportal-authorized": "alice@example.com",
    }
    assert IamRole.objects.filter(name="reports-builder").exists()


def test_a_role_is_created_with_several_inline_and_managed_policies(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    iam = admin_iam(account.account_id)
    arns = [
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(READ))["Policy"]["Arn"]
        for name in ("reports-read", "reports-list")
    ]
    write = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::acme-reports/*"}
        ],
    }
    form = create_form(
        account,
        inline_policy_name_1="reports-read",
        inline_policy_document_1=json.dumps(READ),
        inline_policy_name_3="reports-write",
        inline_policy_document_3=json.dumps(write),
        managed_policy_arns="\n".join(arns),
    )
    client = client_for(requester)
    page = client.get(reverse("role_create")).content.decode()
    for n in (1, 2, 3):
        assert f'name="inline_policy_name_{n}"' in page
        assert f'name="inline_policy_document_{n}"' in page

    preview = client.post(reverse("role_create"), form).content.decode()
    assert "reports-read" in preview and "reports-write" in preview
    client.post(reverse("role_create"), {**form, "submit": "1"})

    created = PolicyRequest.objects.get()
    payload = created.changes.get().payload
    assert set(payload["inline_policies"]) == {"reports-read", "reports-write"}
    assert payload["managed_policy_arns"] == arns
    approve(created, reviewer)
    assert sorted(iam.list_role_policies(RoleName="reports-builder")["PolicyNames"]) == [
        "reports-read",
        "reports-write",
    ]
    attached = iam.list_attached_role_policies(RoleName="reports-builder")["AttachedPolicies"]
    assert sorted(p["PolicyArn"] for p in attached) == sorted(arns)


def test_create_by_htmx_swaps_the_form_and_redirects_on_submit(
    requester: User, account: AwsAccount
) -> None:
    client = client_for(requester)
    response = client.post(reverse("role_create"), create_form(account), **HTMX)
    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<section id="create"')
    assert "Create role reports-builder" in text

    response = client.post(reverse("role_create"), create_form(account, submit="1"), **HTMX)
    created = PolicyRequest.objects.get()
    assert response["HX-Redirect"] == reverse("request_detail", args=[created.pk])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trust_preset": "document", "trust_document": "{not json"}, "This is not valid JSON"),
        ({"trust_preset": "document", "trust_document": ""}, "Write the trust policy"),
        ({"trust_value": "lambda"}, "Name a service principal such as lambda.amazonaws.com"),
        ({"trust_preset": "role", "trust_value": "arn:aws:iam::1:role/x"}, "exact ARN of a role"),
        ({"trust_preset": "account", "trust_value": "123456789012"}, "only with an ExternalId"),
        ({"trust_preset": "oidc", "trust_value": "x"}, "Give the provider&#x27;s ARN"),
        ({"name": "bad name"}, "A role name is 1-64 letters"),
        ({"name": "team/api"}, "A role name is 1-64 letters"),
        ({"path": "no spaces/"}, "Name the new role by its ARN"),
        ({"tags": "no equals sign"}, "Write each tag as key=value"),
        ({"inline_policy_name_1": "x"}, "Give the inline policy&#x27;s document"),
        ({"inline_policy_name_2": "x", "inline_policy_document_2": "[1]"}, "JSON object"),
        ({"inline_policy_document_3": "{not json"}, "This is not valid JSON"),
        ({"inline_policy_document_2": json.dumps(READ)}, "Name the inline policy."),
        (
            {
                "inline_policy_name_1": "read",
                "inline_policy_document_1": json.dumps(READ),
                "inline_policy_name_3": "READ",
                "inline_policy_document_3": json.dumps(READ),
            },
            "Another inline policy is named READ",
        ),
        (
            {"inline_policy_name_1": "read", "inline_policy_document_1": '{"Statement": 5}'},
            "Statement",
        ),
        ({"managed_policy_arns": "arn:aws:iam::aws:policy/x y"}, "Name a managed policy"),
        ({"justification": ""}, "Say why you need this access"),
        ({"max_session_duration": "99"}, "Select a valid choice"),
        ({"account": "000000000000"}, "Select a valid choice"),
        ({"name": "x\x00y"}, "Null characters are not allowed"),
        ({"trust_preset": "document", "trust_document": "[" * 40 + "]" * 40}, "nested more"),
    ],
)
def test_create_shows_bad_input_as_form_errors(
    requester: User, account: AwsAccount, overrides: dict[str, str], message: str
) -> None:
    client = client_for(requester)
    response = client.post(reverse("role_create"), create_form(account, **overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    htmx = client.post(reverse("role_create"), create_form(account, **overrides), **HTMX)
    assert htmx.status_code == 200
    assert message in htmx.content.decode()
    assert not PolicyRequest.objects.exists()


def test_letting_me_use_the_role_adds_me_to_whoever_the_access_tag_names(
    requester: User, account: AwsAccount
) -> None:
    form = create_form(account, tags="iamportal-authorized=team-payments", submit="1")
    client_for(requester).post(reverse("role_create"), form)
    tags = PolicyRequest.objects.get().changes.get().payload["tags"]
    assert tags == {"iamportal-authorized": "team-payments:alice@example.com"}


def test_an_error_finding_needs_an_acknowledgement_on_the_page(
    requester: User, account: AwsAccount
) -> None:
    public = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
        }
    )
    form = create_form(account, trust_preset="document", trust_document=public)
    client = client_for(requester)
    preview = client.post(reverse("role_create"), form).content.decode()
    assert "Anyone may assume the role" in preview
    assert 'name="acknowledge"' in preview
    refused = client.post(reverse("role_create"), {**form, "submit": "1"})
    assert refused.status_code == 400
    assert "Acknowledge them" in refused.content.decode()
    accepted = client.post(
        reverse("role_create"),
        {**form, "submit": "1", "acknowledge": "on", "acknowledgement_reason": "A public demo."},
    )
    assert accepted.status_code == 302
    assert PolicyRequest.objects.get().risk == "error"


def test_create_is_linked_from_the_roles_list_and_the_account_page(
    requester: User, account: AwsAccount
) -> None:
    client = client_for(requester)
    assert reverse("role_create") in client.get(reverse("role_list")).content.decode()
    page = client.get(reverse("account_detail", args=[account.account_id])).content.decode()
    assert f"{reverse('role_create')}?account={account.account_id}" in page


# --- clone -------------------------------------------------------------------------------


def test_clone_previews_the_copy_and_files_a_creation(
    requester: User, reviewer: User, role: IamRole
) -> None:
    url = urls(role)["clone"]
    form = {
        "account": role.account.account_id,
        "name": "payments-api-v2",
        "path": "/",
        "parts": ["trust", "inline", "description"],
        "justification": "A second version.",
        "preview": "1",
    }
    client = client_for(requester)
    preview = client.post(url, form).content.decode()
    assert "Create role payments-api-v2" in preview
    assert "events-send" in preview
    response = client.post(url, {**form, "submit": "1"}, **HTMX)
    created = PolicyRequest.objects.get()
    assert response["HX-Redirect"] == reverse("request_detail", args=[created.pk])
    approve(created, reviewer)
    iam = admin_iam(role.account.account_id)
    assert iam.list_role_policies(RoleName="payments-api-v2")["PolicyNames"] == ["events-send"]


def test_clone_without_the_trust_policy_takes_a_preset(requester: User, role: IamRole) -> None:
    form = {
        "account": role.account.account_id,
        "name": "payments-lambda",
        "path": "/",
        "parts": ["inline"],
        "justification": "For a Lambda function.",
        "preview": "1",
    }
    client = client_for(requester)
    missing = client.post(urls(role)["clone"], form)
    assert missing.status_code == 400
    assert "A role needs a trust policy: copy it, or choose who may assume the copy." in (
        missing.content.decode()
    )
    chosen = {**form, "trust_preset": "service", "trust_value": "lambda.amazonaws.com"}
    preview = client.post(urls(role)["clone"], chosen)
    assert preview.status_code == 200
    assert "trusting lambda.amazonaws.com" in preview.content.decode()
    client.post(urls(role)["clone"], {**chosen, "submit": "1"})
    payload = PolicyRequest.objects.get().changes.get().payload
    assert payload["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }


def test_clone_refuses_a_name_the_account_has(requester: User, role: IamRole) -> None:
    form = {
        "account": role.account.account_id,
        "name": "payments-api",
        "path": "/",
        "parts": ["trust"],
        "justification": "Again.",
        "preview": "1",
    }
    response = client_for(requester).post(urls(role)["clone"], form)
    assert response.status_code == 400
    assert "already has a role named payments-api" in response.content.decode()


# --- delete ------------------------------------------------------------------------------


def test_delete_shows_last_use_and_who_may_use_it(requester: User, role: IamRole) -> None:
    IamRole.objects.filter(pk=role.pk).update(
        tags={"iamportal-authorized": "team-payments"}, last_used_region="eu-west-1"
    )
    page = client_for(requester).get(urls(role)["delete"]).content.decode()
    assert 'id="last-used"' in page
    assert "never, as far as AWS reported" in page
    assert "team-payments" in page
    assert "events-send" in page  # what is deleted, and kept in the request


def test_delete_needs_the_typed_name_and_a_reason(
    requester: User, reviewer: User, role: IamRole
) -> None:
    url = urls(role)["delete"]
    client = client_for(requester)
    wrong = client.post(url, {"confirmation": "payments", "reason": "Unused."})
    assert wrong.status_code == 400
    assert "Type the name of the role, payments-api" in wrong.content.decode()
    no_reason = client.post(url, {"confirmation": "payments-api", "reason": ""}, **HTMX)
    assert no_reason.status_code == 200
    assert "Say why" in no_reason.content.decode()
    assert not PolicyRequest.objects.exists()

    response = client.post(url, {"confirmation": "payments-api", "reason": "Unused since May."})
    created = PolicyRequest.objects.get()
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert created.risk == "error"
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=created.pk,
            reviewer=reviewer,
            revision=created.revision,
            findings_acknowledged=True,
        )
    assert not exists(role.account, "payments-api")
    assert not IamRole.objects.filter(pk=role.pk).exists()
    # The request page still shows what was deleted.
    page = client.get(reverse("request_detail", args=[created.pk])).content.decode()
    assert "events-send" in page


# --- settings ----------------------------------------------------------------------------


def test_settings_preview_then_submit_and_apply(
    requester: User, reviewer: User, role: IamRole
) -> None:
    url = urls(role)["settings"]
    form = {
        "description": "Payments API",
        "max_session_duration": "14400",
        "justification": "Long batch jobs.",
        "preview": "1",
    }
    client = client_for(requester)
    preview = client.post(url, form, **HTMX).content.decode()
    assert preview.lstrip().startswith('<section id="settings"')
    assert "maximum session duration to 4 hours" in preview
    response = client.post(url, {**form, "submit": "1"})
    created = PolicyRequest.objects.get()
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    approve(created, reviewer)
    got = admin_iam(role.account.account_id).get_role(RoleName=role.name)["Role"]
    assert (got["Description"], got["MaxSessionDuration"]) == ("Payments API", 14400)


def test_settings_that_change_nothing_are_a_form_error(requester: User, role: IamRole) -> None:
    form = {"description": "", "max_session_duration": "3600", "justification": "x"}
    response = client_for(requester).post(urls(role)["settings"], {**form, "preview": "1"})
    assert response.status_code == 400
    assert "already has this description and session duration" in response.content.decode()


# --- iamportal's own roles ---------------------------------------------------------------


@pytest.mark.parametrize("page", ["clone", "delete", "settings"])
def test_iamportals_own_roles_cannot_be_cloned_deleted_or_changed_from_the_pages(
    requester: User, account: AwsAccount, page: str
) -> None:
    spoke = role_in(account, "iamportal-spoke", in_aws=False)
    url = urls(spoke)[page]
    client = client_for(requester)
    shown = client.get(url).content.decode()
    assert "one of iamportal&#x27;s own roles" in shown
    assert 'name="reason"' not in shown and 'name="justification"' not in shown
    posted: dict[str, Any] = {
        "confirmation": "iamportal-spoke",
        "reason": "Mine.",
        "description": "Mine",
        "max_session_duration": "3600",
        "justification": "Mine.",
        "account": account.account_id,
        "name": "spoke-copy",
        "path": "/",
        "submit": "1",
    }
    response = client.post(url, posted)
    assert response.status_code == 400
    assert not PolicyRequest.objects.exists()
    detail = client.get(reverse("role_detail", args=[account.account_id, spoke.name]))
    assert urls(spoke)[page] not in detail.content.decode()


def test_the_role_page_links_to_clone_delete_and_settings(requester: User, role: IamRole) -> None:
    page = (
        client_for(requester)
        .get(reverse("role_detail", args=[role.account.account_id, role.name]))
        .content.decode()
    )
    for url in (urls(role)["clone"], urls(role)["delete"], urls(role)["settings"]):
        assert url in page


def test_the_admin_shows_a_creation_and_approves_it_after_confirmation(
    requester: User, superuser: User, account: AwsAccount
) -> None:
    client_for(requester).post(reverse("role_create"), create_form(account, submit="1"))
    created = PolicyRequest.objects.get()
    admin = client_for(superuser)
    page = admin.get(reverse("admin:requests_app_policyrequest_change", args=[created.pk]))
    assert page.status_code == 200
    assert "reports-builder" in page.content.decode()
    listing = admin.get(reverse("admin:requests_app_policyrequest_changelist"))
    assert listing.status_code == 200
    confirm = admin.post(
        reverse("admin:requests_app_policyrequest_changelist"),
        {"action": "approve", "_selected_action": [str(created.pk)]},
    )
    assert confirm.status_code == 200
    assert "Create role reports-builder" in confirm.content.decode()
