"""Findings on every change type, and on what the role can do once a request is
applied together with what it has and with its other approved requests."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, ManagedPolicy
from requests_app import services
from requests_app.changes import ChangeSpec
from requests_app.findings import ChangeFinding, findings_risk, request_findings
from requests_app.models import Change, PolicyRequest
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ACCOUNT = "111111111111"
OUTSIDE = "999999999999"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
PASS_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"arn:aws:iam::{ACCOUNT}:role/*",
        }
    ],
}
RUN_INSTANCES = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}],
}
READ_INVOICES = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-invoices/*"}
    ],
}


@pytest.fixture
def role() -> IamRole:
    account = AwsAccount.objects.create(account_id=ACCOUNT, name="acme-prod")
    return IamRole.objects.create(
        account=account,
        arn=ROLE_ARN,
        name="payments-api",
        content_hash="x",
        synced_at=timezone.now(),
        permissions_boundary_arn=f"arn:aws:iam::{ACCOUNT}:policy/boundary",
    )


def spec(type: str, payload: dict[str, Any], *, target: str = ROLE_ARN, previous: Any = None):
    return ChangeSpec(
        type=type, target_arn=target, account_id=ACCOUNT, payload=payload, previous=previous
    )


def inline(document: dict[str, Any], name: str = "new") -> ChangeSpec:
    return spec(Change.Type.INLINE_POLICY_PUT, {"policy_name": name, "document": document})


def codes(findings: list[ChangeFinding]) -> list[str]:
    return [f.code for f in findings]


def the(findings: list[ChangeFinding], code: str) -> ChangeFinding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, codes(findings)
    return matching[0]


# --- the effective result --------------------------------------------------------------


def test_run_instances_on_a_role_that_can_pass_roles_is_escalation_together(
    role: IamRole,
) -> None:
    role.inline_policies = {"deploy": PASS_ROLE}
    role.save(update_fields=["inline_policies"])

    found = request_findings(role=role, changes=[inline(RUN_INSTANCES)])

    finding = the(found, "escalation-together")
    assert finding.severity == "error"
    assert finding.change == 0
    assert "together with what the role already has" in finding.detail.lower()
    assert 'inline policy "deploy" (already on the role)' in finding.detail
    assert 'ec2:RunInstances (from inline policy "new" (this request))' in finding.detail
    # The request's own statement keeps its JSON Pointer.
    assert finding.location == "/Statement/0/Action"


def test_without_the_existing_pass_role_there_is_no_escalation(role: IamRole) -> None:
    found = request_findings(role=role, changes=[inline(RUN_INSTANCES)])

    assert "escalation-together" not in codes(found)


def test_an_approved_request_not_yet_applied_counts_as_what_the_role_has(role: IamRole) -> None:
    other = PolicyRequest.objects.create(
        requester=make_user("alice"),
        role=role,
        role_arn=role.arn,
        account=role.account,
        justification="deploys",
        status=PolicyRequest.Status.APPROVED,
    )
    Change.objects.create(
        request=other,
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=role.arn,
        account_id=ACCOUNT,
        payload={"policy_name": "deploy", "document": PASS_ROLE},
    )

    found = request_findings(role=role, changes=[inline(RUN_INSTANCES)])

    finding = the(found, "escalation-together")
    assert f"request #{other.pk}, approved, not yet applied" in finding.detail


@pytest.mark.parametrize("status", [PolicyRequest.Status.PENDING, PolicyRequest.Status.REJECTED])
def test_requests_not_approved_do_not_count(role: IamRole, status: str) -> None:
    other = PolicyRequest.objects.create(
        requester=make_user("alice"),
        role=role,
        role_arn=role.arn,
        account=role.account,
        justification="deploys",
        status=status,
    )
    Change.objects.create(
        request=other,
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=role.arn,
        account_id=ACCOUNT,
        payload={"policy_name": "deploy", "document": PASS_ROLE},
    )

    assert "escalation-together" not in codes(
        request_findings(role=role, changes=[inline(RUN_INSTANCES)])
    )


def test_replacing_the_policy_that_passes_roles_is_not_escalation(role: IamRole) -> None:
    role.inline_policies = {"deploy": PASS_ROLE}
    role.save(update_fields=["inline_policies"])

    found = request_findings(role=role, changes=[inline(RUN_INSTANCES, name="deploy")])

    assert "escalation-together" not in codes(found)


def test_one_policy_with_both_halves_is_reported_once_by_its_own_lint(role: IamRole) -> None:
    both = {
        "Version": "2012-10-17",
        "Statement": [PASS_ROLE["Statement"][0], RUN_INSTANCES["Statement"][0]],
    }

    found = request_findings(role=role, changes=[inline(both)])

    assert "privilege-escalation" in codes(found)
    assert "escalation-together" not in codes(found)


def test_an_attached_customer_policy_contributes_to_the_effective_result(role: IamRole) -> None:
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/deployer"
    ManagedPolicy.objects.create(
        account=role.account,
        arn=policy_arn,
        name="deployer",
        document=PASS_ROLE,
        content_hash="x",
        synced_at=timezone.now(),
    )
    role.managed_policies = [{"arn": policy_arn, "name": "deployer"}]
    role.save(update_fields=["managed_policies"])

    finding = the(
        request_findings(role=role, changes=[inline(RUN_INSTANCES)]), "escalation-together"
    )

    assert "managed policy deployer (attached)" in finding.detail


def test_power_user_access_with_an_existing_pass_role_is_escalation_together(
    role: IamRole,
) -> None:
    role.inline_policies = {"deploy": PASS_ROLE}
    role.save(update_fields=["inline_policies"])
    attach = spec(
        Change.Type.MANAGED_POLICY_ATTACH,
        {"policy_arn": "arn:aws:iam::aws:policy/PowerUserAccess"},
    )

    found = request_findings(role=role, changes=[attach])

    assert {"managed-policy-broad", "escalation-together"} <= set(codes(found))
    assert the(found, "escalation-together").location == ""


# --- managed policies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("AdministratorAccess", "managed-policy-admin"),
        ("IAMFullAccess", "managed-policy-iam-write"),
        ("PowerUserAccess", "managed-policy-broad"),
    ],
)
def test_attaching_a_risky_aws_managed_policy_is_an_error(
    role: IamRole, name: str, code: str
) -> None:
    attach = spec(
        Change.Type.MANAGED_POLICY_ATTACH, {"policy_arn": f"arn:aws:iam::aws:policy/{name}"}
    )

    finding = the(request_findings(role=role, changes=[attach]), code)

    assert finding.severity == "error"
    assert name in finding.detail


def test_attaching_a_read_only_aws_policy_has_no_finding(role: IamRole) -> None:
    attach = spec(
        Change.Type.MANAGED_POLICY_ATTACH, {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    )

    assert request_findings(role=role, changes=[attach]) == []


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            },
            "managed-policy-admin",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": "*"}],
            },
            "managed-policy-escalation",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}],
            },
            "managed-policy-not-action",
        ),
    ],
)
def test_attaching_a_customer_policy_that_lints_as_risky_is_an_error(
    role: IamRole, document: dict[str, Any], code: str
) -> None:
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/ops"
    ManagedPolicy.objects.create(
        account=role.account,
        arn=policy_arn,
        name="ops",
        document=document,
        content_hash="x",
        synced_at=timezone.now(),
    )
    attach = spec(Change.Type.MANAGED_POLICY_ATTACH, {"policy_arn": policy_arn})

    finding = the(request_findings(role=role, changes=[attach]), code)

    assert finding.severity == "error"
    assert "ops" in finding.detail


@pytest.mark.parametrize(
    "type", [Change.Type.MANAGED_POLICY_CREATE, Change.Type.MANAGED_POLICY_VERSION]
)
def test_a_managed_policy_document_is_linted(role: IamRole, type: str) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::x/*"}
        ],
    }
    change = spec(type, {"document": document}, target=f"arn:aws:iam::{ACCOUNT}:policy/ops")

    finding = the(request_findings(role=role, changes=[change]), "allow-with-notresource")

    assert finding.location == "/Statement/0/NotResource"


# --- trust policies ---------------------------------------------------------------------


def trust(principal: Any, **condition: Any) -> ChangeSpec:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return spec(
        Change.Type.TRUST_POLICY_UPDATE,
        {"document": {"Version": "2012-10-17", "Statement": [statement]}},
    )


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}])
def test_a_trust_policy_anyone_may_assume_is_an_error(role: IamRole, principal: Any) -> None:
    finding = the(request_findings(role=role, changes=[trust(principal)]), "trust-public")

    assert finding.severity == "error"
    assert finding.location == "/Statement/0/Principal"


def test_a_star_principal_limited_to_the_organisation_is_not_public(role: IamRole) -> None:
    change = trust({"AWS": "*"}, StringEquals={"aws:PrincipalOrgID": "o-abc123"})

    assert "trust-public" not in codes(request_findings(role=role, changes=[change]))


def test_trusting_an_account_outside_the_inventory_is_flagged(role: IamRole) -> None:
    bare = the(
        request_findings(role=role, changes=[trust({"AWS": f"arn:aws:iam::{OUTSIDE}:root"})]),
        "trust-external-account",
    )
    with_external_id = the(
        request_findings(
            role=role,
            changes=[trust({"AWS": OUTSIDE}, StringEquals={"sts:ExternalId": "x1"})],
        ),
        "trust-external-account",
    )

    assert bare.severity == "error"
    assert OUTSIDE in bare.detail
    assert with_external_id.severity == "warning"


def test_trusting_an_account_of_the_inventory_has_no_finding(role: IamRole) -> None:
    change = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/ci"})

    assert request_findings(role=role, changes=[change]) == []


def test_an_oidc_provider_without_audience_and_subject_conditions_is_an_error(
    role: IamRole,
) -> None:
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    host = "token.actions.githubusercontent.com"
    loose = trust({"Federated": provider}, StringEquals={f"{host}:aud": "sts.amazonaws.com"})
    tight = trust(
        {"Federated": provider},
        StringEquals={f"{host}:aud": "sts.amazonaws.com"},
        StringLike={f"{host}:sub": "repo:acme/payments:*"},
    )

    finding = the(request_findings(role=role, changes=[loose]), "trust-federated-unconditioned")
    assert finding.severity == "error"
    assert f"{host}:sub" in finding.detail
    assert request_findings(role=role, changes=[tight]) == []


def test_a_saml_provider_without_an_audience_is_a_warning(role: IamRole) -> None:
    change = trust({"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta"})

    finding = the(request_findings(role=role, changes=[change]), "trust-federated-unconditioned")

    assert finding.severity == "warning"


def test_a_service_principal_without_a_source_condition_is_information(role: IamRole) -> None:
    events = the(
        request_findings(role=role, changes=[trust({"Service": "events.amazonaws.com"})]),
        "trust-service-unconditioned",
    )
    scoped = trust({"Service": "events.amazonaws.com"}, StringEquals={"aws:SourceAccount": ACCOUNT})

    assert events.severity == "info"
    assert request_findings(role=role, changes=[scoped]) == []
    assert request_findings(role=role, changes=[trust({"Service": "ec2.amazonaws.com"})]) == []


def test_merged_trust_statements_are_judged_alone(role: IamRole) -> None:
    statement = {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}
    change = spec(
        Change.Type.TRUST_POLICY_UPDATE,
        {"statements": [statement]},
        previous={"Version": "2012-10-17", "Statement": []},
    )

    finding = the(request_findings(role=role, changes=[change]), "trust-public")

    assert finding.location == "/statements/0/Principal"


# --- resource policies -------------------------------------------------------------------


def resource_policy(target: str, statement: dict[str, Any]) -> ChangeSpec:
    return spec(
        Change.Type.RESOURCE_POLICY_PUT,
        {"document": {"Version": "2012-10-17", "Statement": [statement]}},
        target=target,
    )


BUCKET = "arn:aws:s3:::acme-invoices"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:events"


@pytest.mark.parametrize(
    ("target", "principal", "action"),
    [
        (BUCKET, "*", "s3:GetObject"),
        (QUEUE, {"AWS": "*"}, "sqs:SendMessage"),
        (TOPIC, {"AWS": ["*"]}, "sns:Publish"),
    ],
)
def test_a_public_resource_policy_is_an_error(
    role: IamRole, target: str, principal: Any, action: str
) -> None:
    change = resource_policy(
        target, {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": target}
    )

    finding = the(request_findings(role=role, changes=[change]), "public-resource-policy")

    assert finding.severity == "error"


@pytest.mark.parametrize(
    "condition",
    [
        {"ArnLike": {"aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:events"}},
        {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}},
        {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
    ],
)
def test_a_star_principal_with_a_restricting_condition_is_not_public(
    role: IamRole, condition: dict[str, Any]
) -> None:
    change = resource_policy(
        QUEUE,
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": QUEUE,
            "Condition": condition,
        },
    )

    assert request_findings(role=role, changes=[change]) == []


def test_a_public_deny_is_not_a_finding(role: IamRole) -> None:
    change = resource_policy(
        BUCKET,
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": BUCKET},
    )

    assert request_findings(role=role, changes=[change]) == []


def test_not_principal_not_action_and_not_resource_allows_are_errors(role: IamRole) -> None:
    change = resource_policy(
        BUCKET,
        {
            "Effect": "Allow",
            "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/x"},
            "NotAction": "s3:DeleteBucket",
            "NotResource": f"{BUCKET}/private/*",
        },
    )

    found = request_findings(role=role, changes=[change])

    assert {"allow-with-notprincipal", "allow-with-notaction", "allow-with-notresource"} <= set(
        codes(found)
    )


def test_a_resource_policy_granting_an_outside_account_is_a_warning(role: IamRole) -> None:
    change = resource_policy(
        QUEUE,
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OUTSIDE}:root"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE,
        },
    )

    assert the(request_findings(role=role, changes=[change]), "resource-external-account")


# --- the rest --------------------------------------------------------------------------


def test_removing_the_permissions_boundary_is_an_error(role: IamRole) -> None:
    change = spec(
        Change.Type.PERMISSIONS_BOUNDARY_DELETE, {}, previous=role.permissions_boundary_arn
    )

    finding = the(request_findings(role=role, changes=[change]), "boundary-removed")

    assert finding.severity == "error"
    assert role.permissions_boundary_arn in finding.detail


def test_setting_the_access_tags_is_a_warning(role: IamRole, settings: Any) -> None:
    change = spec(Change.Type.TAGS_PUT, {"tags": {settings.IAMPORTAL_AUTH_TAG: "payments"}})

    assert the(request_findings(role=role, changes=[change]), "access-tags").severity == "warning"


def test_inline_allows_with_not_action_are_errors(role: IamRole) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "*"}],
    }

    finding = the(request_findings(role=role, changes=[inline(document)]), "allow-with-notaction")

    assert finding.location == "/Statement/0/NotAction"


def test_the_risk_is_the_highest_severity() -> None:
    def one(severity: Any) -> ChangeFinding:
        return ChangeFinding(0, severity, "x", "x", "x")

    assert findings_risk([]) == "none"
    assert findings_risk([one("info")]) == "info"
    assert findings_risk([one("info"), one("warning")]) == "warning"
    assert findings_risk([one("warning"), one("error").as_dict()]) == "error"


# --- stored on the request ---------------------------------------------------------------


def test_the_findings_and_risk_are_stored_at_submit(role: IamRole) -> None:
    created = services.policy_request_changes_submit(
        requester=make_user("bob"),
        role=role,
        changes=[
            {
                "type": "inline_policy_put",
                "payload": {"policy_name": "r", "document": READ_INVOICES},
            }
        ],
        justification="invoices",
    )

    assert isinstance(created, PolicyRequest)
    assert created.risk == "none"
    assert created.findings == []


def test_the_findings_are_judged_again_after_an_edit(role: IamRole) -> None:
    role.inline_policies = {"deploy": PASS_ROLE}
    role.save(update_fields=["inline_policies"])
    bob = make_user("bob")
    created = services.policy_request_changes_submit(
        requester=bob,
        role=role,
        changes=[
            {
                "type": "inline_policy_put",
                "payload": {"policy_name": "r", "document": READ_INVOICES},
            }
        ],
        justification="invoices",
    )
    assert isinstance(created, PolicyRequest)
    change = created.changes.get()

    with pytest.raises(services.RequestInvalid) as refused:
        services.change_edit(
            change_id=change.pk, editor=bob, payload={"policy_name": "r", "document": RUN_INSTANCES}
        )
    assert "findings_acknowledgement" in refused.value.errors
    services.change_edit(
        change_id=change.pk,
        editor=bob,
        payload={"policy_name": "r", "document": RUN_INSTANCES},
        findings_acknowledgement="Build agents start instances with the deploy role.",
    )

    created.refresh_from_db()
    assert created.risk == "error"
    assert "escalation-together" in [f["code"] for f in created.findings]
    edited = created.events.get(kind="edited")
    assert edited.data["acknowledgement"]["reason"].startswith("Build agents")
