"""Every change type: what validation accepts and refuses, what apply does in AWS
through the spoke role of the account, and how revert takes it away again."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from django.contrib.auth.models import User

from accounts.models import AwsAccount, IamRole
from accounts.services import account_add, role_adopt
from iamportal import aws, demo
from requests_app import changes
from requests_app.changes import ChangeInvalid, ChangeRefused, ChangeSpec
from requests_app.models import Change, PolicyRequest
from tests.factories import admin_client, synced

pytestmark = pytest.mark.django_db

T = Change.Type
OTHER_REGION = "eu-west-1"


def allow(*actions: str, resource: str | list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }


READ_INVOICES = allow("s3:GetObject", resource="arn:aws:s3:::acme-invoices/*")
READ_REPORTS = allow("s3:GetObject", resource="arn:aws:s3:::acme-reports/*")
SEND_JOBS = allow("sqs:SendMessage", resource="arn:aws:sqs:us-east-1:111111111111:jobs")
ECS_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EcsTasks",
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


# --- the organisation ------------------------------------------------------------------


def member(name: str, *, regions: list[str] | None = None) -> AwsAccount:
    """A member account of the organisation with iamportal's spoke role in it."""
    org = aws.client("organizations")
    status = org.create_account(Email=f"{name}@example.com", AccountName=name)
    account_id = status["CreateAccountStatus"]["AccountId"]
    demo.spoke_role_create(admin_client(account_id, "iam"))
    return account_add(account_id=account_id, name=name, regions=regions)


@pytest.fixture
def account() -> AwsAccount:
    aws.client("organizations").create_organization(FeatureSet="ALL")
    return member("acme-prod")


@pytest.fixture
def other(account: AwsAccount) -> AwsAccount:
    """A second account, holding the shared buckets, queues and topics."""
    return member("acme-data", regions=["us-east-1", OTHER_REGION])


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    iam = admin_client(account.account_id, "iam")
    created = iam.create_role(
        RoleName="payments-api", AssumeRolePolicyDocument=json.dumps(ECS_TRUST)
    )
    # Read as a sync would read it; the rest of the account is not needed.
    role = role_adopt(account=account, arn=created["Role"]["Arn"])
    assert role is not None
    return role


def iam_of(role: IamRole) -> Any:
    return admin_client(role.account.account_id, "iam")


def customer_policy(account: AwsAccount, name: str, document: dict[str, Any]) -> str:
    iam = admin_client(account.account_id, "iam")
    return str(
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    )


# --- changes, applied and reverted as the services do ------------------------------------


def validate(type: str, target_arn: str, payload: Any) -> ChangeSpec:
    return changes.change_validate(type=type, target_arn=target_arn, payload=payload)


def refused(type: str, target_arn: Any, payload: Any) -> dict[str, str]:
    with pytest.raises(ChangeInvalid) as caught:
        changes.change_validate(type=type, target_arn=target_arn, payload=payload)
    return caught.value.errors


def stored(spec: ChangeSpec, requester: User) -> Change:
    account = AwsAccount.objects.get(account_id=spec.account_id)
    request = PolicyRequest.objects.create(
        requester=requester,
        role_arn=spec.target_arn,
        account=account,
        justification="Quarterly close.",
    )
    return Change.objects.create(
        request=request,
        type=spec.type,
        target_arn=spec.target_arn,
        account_id=spec.account_id,
        payload=spec.payload,
        previous=spec.previous,
    )


def spoke(change: Change) -> Any:
    return aws.spoke_session(AwsAccount.objects.get(account_id=change.account_id))


def apply(change: Change) -> Change:
    change.outcome = changes.change_apply(change=change, session=spoke(change))
    change.status = Change.Status.APPLIED
    change.save(update_fields=["outcome", "status"])
    return change


def revert(change: Change) -> None:
    changes.change_revert(change=change, session=spoke(change))


def applied(type: str, target_arn: str, payload: Any, requester: User) -> Change:
    return apply(stored(validate(type, target_arn, payload), requester))


# --- validation of any type ------------------------------------------------------------


def test_it_refuses_an_unknown_type(role: IamRole) -> None:
    assert "type" in refused("role_rename", role.arn, {})
    assert "type" in refused(None, role.arn, {})  # type: ignore[arg-type]


def test_it_refuses_a_payload_that_is_not_an_object(role: IamRole) -> None:
    assert refused(T.INLINE_POLICY_PUT, role.arn, ["policy_name"]) == {
        "payload": "The payload must be a JSON object."
    }


def test_it_refuses_a_missing_or_over_long_target(role: IamRole) -> None:
    payload = {"policy_name": "x", "document": READ_INVOICES}
    assert "target_arn" in refused(T.INLINE_POLICY_PUT, None, payload)
    assert "target_arn" in refused(T.INLINE_POLICY_PUT, role.arn + "x" * 2048, payload)


def test_it_refuses_unknown_and_missing_payload_keys(role: IamRole) -> None:
    errors = refused(T.INLINE_POLICY_PUT, role.arn, {"policy_name": "x", "document": {}, "y": 1})
    assert errors == {
        "payload": "Unknown keys: y. This change takes policy_name, document.",
    }
    assert "payload.document" in refused(T.INLINE_POLICY_PUT, role.arn, {"policy_name": "x"})
    assert "payload" in refused(T.PERMISSIONS_BOUNDARY_DELETE, role.arn, {"policy_arn": "x"})


def test_it_refuses_a_role_not_in_the_inventory(role: IamRole) -> None:
    arn = aws.role_arn(role.account.account_id, "no-such-role")
    errors = refused(T.TAGS_PUT, arn, {"tags": {"team": "payments"}})
    assert "not in the inventory" in errors["target_arn"]


def test_it_refuses_a_role_of_an_account_iamportal_does_not_manage(role: IamRole) -> None:
    AwsAccount.objects.filter(pk=role.account.pk).update(enabled=False)
    errors = refused(T.TAGS_PUT, role.arn, {"tags": {"team": "payments"}})
    assert "not an account iamportal manages" in errors["target_arn"]
    errors = refused(T.TAGS_PUT, aws.role_arn("999999999999", "x"), {"tags": {"team": "a"}})
    assert "999999999999" in errors["target_arn"]


@pytest.mark.parametrize("partition", ["aws-us-gov", "aws-cn", "aws-iso", "aws-iso-b", "aws-iso-f"])
def test_it_accepts_a_role_of_any_partition(role: IamRole, partition: str) -> None:
    arn = role.arn.replace("arn:aws:", f"arn:{partition}:", 1)
    IamRole.objects.filter(pk=role.pk).update(arn=arn)
    spec = validate(T.TAGS_PUT, arn, {"tags": {"team": "payments"}})
    assert spec.target_arn == arn
    assert spec.account_id == role.account.account_id


def test_it_refuses_a_role_of_a_made_up_partition(role: IamRole) -> None:
    arn = role.arn.replace("arn:aws:", "arn:aws-foo:", 1)
    IamRole.objects.filter(pk=role.pk).update(arn=arn)
    errors = refused(T.TAGS_PUT, arn, {"tags": {"team": "payments"}})
    assert "Name a role by its ARN" in errors["target_arn"]


def test_it_refuses_an_arn_of_another_service_for_the_type(role: IamRole) -> None:
    payload = {"policy_name": "x", "document": READ_INVOICES}
    assert "target_arn" in refused(T.INLINE_POLICY_PUT, "arn:aws:s3:::acme-invoices", payload)
    assert "target_arn" in refused(T.RESOURCE_POLICY_PUT, role.arn, {"document": ECS_TRUST})
    assert "target_arn" in refused(T.MANAGED_POLICY_CREATE, role.arn, {"document": SEND_JOBS})
    # Non-ASCII digits are digits to Python's \d, never to AWS.
    assert "target_arn" in refused(
        T.TAGS_PUT, role.arn.replace(role.account.account_id, "\u0661" * 12), {"tags": {"a": "b"}}
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"tags": {"team": "a\x00b"}}, "NUL"),
        ({"tags": {"team": "\ud800"}}, "not valid Unicode"),
        ({"tags": {"team": float("nan")}}, "not finite"),
        ({"tags": {"team": {1, 2}}}, "not JSON"),
        ({"tags": {3: "x"}}, "key that is not a string"),
        ({"tags": json.loads("[" * 40 + "]" * 40)}, "levels deep"),
        ({"tags": {"team": "x" * 70_000}}, "over 65536 characters"),
    ],
)
def test_it_refuses_what_cannot_be_stored_as_json(
    role: IamRole, payload: dict[str, Any], message: str
) -> None:
    assert message in refused(T.TAGS_PUT, role.arn, payload)["payload"]


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    leaves: list[Any] = [
        None,
        True,
        0,
        -1,
        10**30,
        1.5,
        "",
        "*",
        "Allow",
        "2012-10-17",
        "x" * 300,
        "\x00",
        "\ud800",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:s3:::acme-lake",
        "aws:tag",
    ]
    if depth > 4 or rng.random() < 0.4:
        return rng.choice(leaves)
    keys = [
        "policy_name",
        "document",
        "statements",
        "tags",
        "keys",
        "policy_arn",
        "description",
        "Version",
        "Statement",
        "Sid",
        "Effect",
        "Principal",
        "Action",
        "Resource",
        "Condition",
        "AWS",
        "",
    ]
    if rng.random() < 0.5:
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(keys): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _mutated(value: Any, rng: random.Random) -> Any:
    """`value` with one randomly chosen node replaced by garbage."""
    if rng.random() < 0.25 or not isinstance(value, dict | list) or not value:
        return _garbage(rng)
    if isinstance(value, dict):
        key = rng.choice(list(value))
        return {**value, key: _mutated(value[key], rng)}
    index = rng.randrange(len(value))
    return [*value[:index], _mutated(value[index], rng), *value[index + 1 :]]


def test_it_never_raises_anything_but_change_invalid_on_any_json(
    role: IamRole, other: AwsAccount
) -> None:
    policy_arn = customer_policy(role.account, "lake-read", READ_INVOICES)
    iam = iam_of(role)
    iam.tag_role(RoleName=role.name, Tags=[{"Key": "team", "Value": "payments"}])
    iam.put_role_policy(RoleName=role.name, PolicyName="p", PolicyDocument=json.dumps(SEND_JOBS))
    iam.put_role_permissions_boundary(RoleName=role.name, PermissionsBoundary=policy_arn)
    admin_client(other.account_id, "s3").create_bucket(Bucket="acme-lake")
    admin_client(other.account_id, "sqs").create_queue(QueueName="invoices")
    topic = admin_client(other.account_id, "sns").create_topic(Name="events")["TopicArn"]
    queue = f"arn:aws:sqs:us-east-1:{other.account_id}:invoices"
    synced(role.account)
    synced(other)
    good: list[tuple[str, str, dict[str, Any]]] = [
        (T.INLINE_POLICY_PUT, role.arn, {"policy_name": "p", "document": READ_INVOICES}),
        (T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": policy_arn}),
        (T.TRUST_POLICY_UPDATE, role.arn, {"statements": ECS_TRUST["Statement"]}),
        (T.TRUST_POLICY_UPDATE, role.arn, {"document": ECS_TRUST}),
        (T.TAGS_PUT, role.arn, {"tags": {"team": "payments"}}),
        (T.TAGS_DELETE, role.arn, {"keys": ["team"]}),
        (T.PERMISSIONS_BOUNDARY_PUT, role.arn, {"policy_arn": policy_arn + "-2"}),
        (T.MANAGED_POLICY_VERSION, policy_arn, {"document": SEND_JOBS}),
        (T.MANAGED_POLICY_CREATE, policy_arn + "-2", {"document": SEND_JOBS}),
        (
            T.RESOURCE_POLICY_PUT,
            "arn:aws:s3:::acme-lake",
            {"statements": [lake_statement(role.arn)]},
        ),
        (T.RESOURCE_POLICY_PUT, queue, {"statements": [queue_statement(role.arn, queue)]}),
        (
            T.RESOURCE_POLICY_PUT,
            topic,
            {
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [queue_statement(role.arn, topic)],
                }
            },
        ),
        (T.INLINE_POLICY_DELETE, role.arn, {"policy_name": "p"}),
        (T.PERMISSIONS_BOUNDARY_DELETE, role.arn, {}),
    ]
    rng = random.Random(20260401)
    targets = [role.arn, policy_arn, "arn:aws:s3:::acme-lake", queue, topic, "", "arn:aws:sqs:x"]
    outcomes = {"valid": 0, "invalid": 0}
    for _ in range(1500):
        type, target, payload = rng.choice(good)
        if rng.random() < 0.1:
            target = rng.choice(targets)
        try:
            spec = validate(type, target, _mutated(payload, rng))
        except ChangeInvalid as exc:
            assert exc.errors
            assert all(isinstance(m, str) and m for m in exc.errors.values())
            outcomes["invalid"] += 1
        else:
            # Whatever passes can be stored: strict JSON, as PostgreSQL takes it.
            json.dumps([spec.payload, spec.previous], allow_nan=False)
            outcomes["valid"] += 1
    # The mutations reach both sides of the checks.
    assert outcomes["valid"] > 20
    assert outcomes["invalid"] > 1000


# --- inline policies -------------------------------------------------------------------


def test_an_inline_put_records_the_document_it_replaces(role: IamRole) -> None:
    spec = validate(
        T.INLINE_POLICY_PUT, role.arn, {"policy_name": "read", "document": READ_INVOICES}
    )
    assert (spec.account_id, spec.previous) == (role.account.account_id, None)
    assert spec.payload == {"policy_name": "read", "document": READ_INVOICES}
    iam_of(role).put_role_policy(
        RoleName=role.name, PolicyName="read", PolicyDocument=json.dumps(READ_REPORTS)
    )
    synced(role.account)
    spec = validate(
        T.INLINE_POLICY_PUT, role.arn, {"policy_name": "read", "document": READ_INVOICES}
    )
    assert spec.previous == READ_REPORTS


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"policy_name": "bad name", "document": READ_INVOICES}, "payload.policy_name"),
        ({"policy_name": "x" * 129, "document": READ_INVOICES}, "payload.policy_name"),
        ({"policy_name": 7, "document": READ_INVOICES}, "payload.policy_name"),
        ({"policy_name": "read", "document": "{}"}, "payload.document"),
        ({"policy_name": "read", "document": {"Statement": []}}, "payload.document"),
        ({"policy_name": "read", "document": ECS_TRUST}, "payload.document"),
    ],
)
def test_an_inline_put_refuses_bad_names_and_documents(
    role: IamRole, payload: dict[str, Any], field: str
) -> None:
    assert field in refused(T.INLINE_POLICY_PUT, role.arn, payload)


def test_an_inline_put_counts_the_roles_other_inline_policies_against_the_limit(
    role: IamRole,
) -> None:
    big = allow("s3:GetObject", resource=[f"arn:aws:s3:::bucket-{n:04}/*" for n in range(300)])
    IamRole.objects.filter(pk=role.pk).update(inline_policies={"big": big})
    errors = refused(T.INLINE_POLICY_PUT, role.arn, {"policy_name": "more", "document": big})
    assert "too large" in errors["payload.document"]


def test_an_inline_put_is_applied_reapplied_and_removed_again(
    role: IamRole, requester: User
) -> None:
    change = applied(
        T.INLINE_POLICY_PUT, role.arn, {"policy_name": "read", "document": READ_INVOICES}, requester
    )
    policy = iam_of(role).get_role_policy(RoleName=role.name, PolicyName="read")
    assert policy["PolicyDocument"] == READ_INVOICES
    apply(change)
    assert iam_of(role).list_role_policies(RoleName=role.name)["PolicyNames"] == ["read"]
    revert(change)
    assert iam_of(role).list_role_policies(RoleName=role.name)["PolicyNames"] == []


def test_reverting_an_inline_put_restores_the_document_it_replaced(
    role: IamRole, requester: User
) -> None:
    iam_of(role).put_role_policy(
        RoleName=role.name, PolicyName="read", PolicyDocument=json.dumps(READ_REPORTS)
    )
    synced(role.account)
    change = applied(
        T.INLINE_POLICY_PUT, role.arn, {"policy_name": "read", "document": READ_INVOICES}, requester
    )
    revert(change)
    policy = iam_of(role).get_role_policy(RoleName=role.name, PolicyName="read")
    assert policy["PolicyDocument"] == READ_REPORTS


def test_reverting_an_inline_put_already_deleted_in_aws_succeeds(
    role: IamRole, requester: User
) -> None:
    change = applied(
        T.INLINE_POLICY_PUT, role.arn, {"policy_name": "read", "document": READ_INVOICES}, requester
    )
    iam_of(role).delete_role_policy(RoleName=role.name, PolicyName="read")
    revert(change)
    revert(change)
    assert iam_of(role).list_role_policies(RoleName=role.name)["PolicyNames"] == []


def test_an_inline_delete_needs_a_policy_the_role_has(role: IamRole) -> None:
    errors = refused(T.INLINE_POLICY_DELETE, role.arn, {"policy_name": "read"})
    assert errors == {"payload.policy_name": "Role payments-api has no inline policy read."}


def test_an_inline_delete_is_applied_twice_and_reverted_with_the_document_from_aws(
    role: IamRole, requester: User
) -> None:
    iam = iam_of(role)
    iam.put_role_policy(
        RoleName=role.name, PolicyName="read", PolicyDocument=json.dumps(READ_REPORTS)
    )
    synced(role.account)
    spec = validate(T.INLINE_POLICY_DELETE, role.arn, {"policy_name": "read"})
    assert spec.previous == READ_REPORTS
    change = stored(spec, requester)
    # Edited in AWS after the request was made: the revert puts back what was deleted.
    iam.put_role_policy(
        RoleName=role.name, PolicyName="read", PolicyDocument=json.dumps(READ_INVOICES)
    )
    apply(change)
    assert iam.list_role_policies(RoleName=role.name)["PolicyNames"] == []
    assert change.outcome == {"document": READ_INVOICES}
    changes.change_apply(change=change, session=spoke(change))
    revert(change)
    assert iam.get_role_policy(RoleName=role.name, PolicyName="read")["PolicyDocument"] == (
        READ_INVOICES
    )


# --- managed policy attachments --------------------------------------------------------


def test_an_attach_takes_aws_managed_policies_and_those_of_the_roles_account(
    role: IamRole, other: AwsAccount
) -> None:
    spec = validate(
        T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    )
    assert spec.previous is None
    own = f"arn:aws:iam::{role.account.account_id}:policy/teams/lake-read"
    assert validate(T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": own}).payload == {
        "policy_arn": own
    }
    foreign = f"arn:aws:iam::{other.account_id}:policy/lake-read"
    errors = refused(T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": foreign})
    assert "its own account" in errors["payload.policy_arn"]
    for bad in ("ReadOnlyAccess", "arn:aws:iam::aws:role/x", 12, None):
        assert "payload.policy_arn" in refused(
            T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": bad}
        )


def test_an_attach_is_applied_reapplied_and_detached_again(role: IamRole, requester: User) -> None:
    arn = customer_policy(role.account, "lake-read", READ_INVOICES)
    change = applied(T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": arn}, requester)
    attached = iam_of(role).list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]
    apply(change)
    revert(change)
    assert iam_of(role).list_attached_role_policies(RoleName=role.name)["AttachedPolicies"] == []
    revert(change)


def test_an_attach_of_a_policy_already_attached_is_refused(role: IamRole) -> None:
    arn = customer_policy(role.account, "lake-read", READ_INVOICES)
    iam_of(role).attach_role_policy(RoleName=role.name, PolicyArn=arn)
    synced(role.account)
    errors = refused(T.MANAGED_POLICY_ATTACH, role.arn, {"policy_arn": arn})
    assert "already attached" in errors["payload.policy_arn"]


def test_a_detach_is_applied_twice_and_reverted_by_attaching(
    role: IamRole, requester: User
) -> None:
    arn = customer_policy(role.account, "lake-read", READ_INVOICES)
    errors = refused(T.MANAGED_POLICY_DETACH, role.arn, {"policy_arn": arn})
    assert "not attached" in errors["payload.policy_arn"]
    iam_of(role).attach_role_policy(RoleName=role.name, PolicyArn=arn)
    synced(role.account)
    change = applied(T.MANAGED_POLICY_DETACH, role.arn, {"policy_arn": arn}, requester)
    assert change.previous == arn
    assert iam_of(role).list_attached_role_policies(RoleName=role.name)["AttachedPolicies"] == []
    apply(change)
    revert(change)
    attached = iam_of(role).list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]


# --- trust policies --------------------------------------------------------------------


def ci_statement(account: AwsAccount, sid: str = "LetCiAssume") -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account.account_id}:role/ci"},
        "Action": "sts:AssumeRole",
    }


def trust_of(role: IamRole) -> Any:
    return iam_of(role).get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(Version="2008-10-17"), "Version"),
        (lambda d: d.update(Statement=[]), "needs a Statement"),
        (lambda d: d["Statement"][0].pop("Principal"), "needs a Principal"),
        (lambda d: d["Statement"][0].update(NotPrincipal={"AWS": "*"}), "no NotPrincipal"),
        (lambda d: d["Statement"][0].pop("Action"), "needs an Action"),
        (lambda d: d["Statement"][0].update(Effect="allow"), "Effect"),
        (lambda d: d["Statement"][0].update(Resource="*"), "trust policy does not take"),
        (lambda d: d["Statement"][0].update(Principal={"Users": "x"}), "unknown principal"),
        (lambda d: d["Statement"][0].update(Condition="x"), "Condition"),
        (lambda d: d["Statement"][0].update(Sid="has space"), "Sid"),
        (lambda d: d.update(Extra=1), "Unknown top-level"),
        (
            lambda d: d["Statement"][0].update(Principal={"AWS": ["a" * 100] * 25}),
            "at most 2048 characters",
        ),
    ],
)
def test_a_trust_policy_document_is_checked_for_structure_and_size(
    role: IamRole, mutate: Any, message: str
) -> None:
    document = json.loads(json.dumps(ECS_TRUST))
    mutate(document)
    errors = refused(T.TRUST_POLICY_UPDATE, role.arn, {"document": document})
    assert message in errors["payload.document"]


def test_trust_policy_statements_to_merge_need_a_sid_of_letters_and_digits(role: IamRole) -> None:
    statement = ci_statement(role.account)
    for sid in (None, "", "let-ci", 7):
        bad = {**statement, "Sid": sid}
        errors = refused(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [bad]})
        assert "Sid of letters and digits" in errors["payload.statements"]
    errors = refused(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [statement, statement]})
    assert "Two statements" in errors["payload.statements"]
    errors = refused(
        T.TRUST_POLICY_UPDATE, role.arn, {"statements": [statement], "document": ECS_TRUST}
    )
    assert "either" in errors["payload"]
    assert "payload" in refused(T.TRUST_POLICY_UPDATE, role.arn, {})


def test_a_trust_policy_document_replaces_and_revert_restores_it(
    role: IamRole, account: AwsAccount, requester: User
) -> None:
    document = {"Version": "2012-10-17", "Statement": [ci_statement(account)]}
    spec = validate(T.TRUST_POLICY_UPDATE, role.arn, {"document": document})
    assert spec.previous == ECS_TRUST
    change = apply(stored(spec, requester))
    assert trust_of(role) == document
    apply(change)
    revert(change)
    assert trust_of(role) == ECS_TRUST


def test_a_trust_policy_merge_keeps_statements_added_since_and_revert_removes_only_its_own(
    role: IamRole, account: AwsAccount, requester: User
) -> None:
    mine = ci_statement(account)
    spec = validate(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [mine]})
    change = stored(spec, requester)
    # Someone else's statement, added in AWS after the request was made.
    theirs = ci_statement(account, sid="Backups")
    edited = {"Version": "2012-10-17", "Statement": [*ECS_TRUST["Statement"], theirs]}
    iam_of(role).update_assume_role_policy(RoleName=role.name, PolicyDocument=json.dumps(edited))
    apply(change)
    assert trust_of(role)["Statement"] == [*ECS_TRUST["Statement"], theirs, mine]
    apply(change)
    assert trust_of(role)["Statement"] == [*ECS_TRUST["Statement"], theirs, mine]
    revert(change)
    assert trust_of(role)["Statement"] == [*ECS_TRUST["Statement"], theirs]
    revert(change)
    assert trust_of(role)["Statement"] == [*ECS_TRUST["Statement"], theirs]


def test_a_merge_may_not_reuse_a_sid_the_policy_already_has(
    role: IamRole, account: AwsAccount
) -> None:
    # Replacing someone else's statement would read as an addition, and its
    # removal at expiry would take theirs with it.
    replacement = {**ci_statement(account), "Sid": "EcsTasks"}
    errors = refused(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [replacement]})
    assert "already has a statement with the Sid EcsTasks" in errors["payload.statements"]
    automatic_looking = ci_statement(account, sid="IamportalAbc")
    errors = refused(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [automatic_looking]})
    assert "iamportal's own" in errors["payload.statements"]


def test_reverting_a_merge_that_would_leave_no_trust_policy_is_refused(
    role: IamRole, account: AwsAccount, requester: User
) -> None:
    added = ci_statement(account)
    change = applied(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [added]}, requester)
    # Someone removed the original statements by hand since.
    iam_of(role).update_assume_role_policy(
        RoleName=role.name,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [added]}),
    )
    with pytest.raises(ChangeRefused, match="without a trust policy"):
        revert(change)
    assert trust_of(role)["Statement"] == [added]


def test_a_trust_change_is_never_written_to_a_role_of_the_same_name_and_another_path(
    role: IamRole, account: AwsAccount, requester: User
) -> None:
    change = stored(
        validate(T.TRUST_POLICY_UPDATE, role.arn, {"statements": [ci_statement(account)]}),
        requester,
    )
    Change.objects.filter(pk=change.pk).update(
        target_arn=role.arn.replace(":role/", ":role/decoy/")
    )
    change.refresh_from_db()
    with pytest.raises(ChangeRefused, match="not arn"):
        apply(change)
    assert "LetCiAssume" not in json.dumps(trust_of(role))


def test_iamportal_s_own_roles_cannot_be_changed(account: AwsAccount) -> None:
    spoke = account.spoke_role_arn
    errors = refused(
        T.MANAGED_POLICY_ATTACH,
        spoke,
        {"policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    assert "iamportal's own roles" in errors["target_arn"]
    assert changes.role_protected(spoke)
    assert changes.role_protected(f"arn:aws:iam::{account.account_id}:role/iamportal-hub")
    assert not changes.role_protected(f"arn:aws:iam::{account.account_id}:role/payments-api")


# --- tags ------------------------------------------------------------------------------


def tags_of(role: IamRole) -> dict[str, str]:
    tags = iam_of(role).list_role_tags(RoleName=role.name)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


@pytest.fixture
def tagged(role: IamRole) -> IamRole:
    iam_of(role).tag_role(
        RoleName=role.name,
        Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
    )
    synced(role.account)
    role.refresh_from_db()
    return role


def test_a_tags_put_records_the_values_it_replaces(tagged: IamRole) -> None:
    spec = validate(T.TAGS_PUT, tagged.arn, {"tags": {"Team": "billing", "cost-centre": "42"}})
    assert spec.previous == {"Team": "payments", "cost-centre": None}


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({}, "Give the tags"),
        (["team"], "Give the tags"),
        ({"aws:cloudformation:stack": "x"}, "aws:"),
        ({"k" * 129: "x"}, "1-128"),
        ({"": "x"}, "1-128"),
        ({"team": "v" * 257}, "at most 256"),
        ({"team": 5}, "must be a string"),
        ({"team": None}, "must be a string"),
        ({"team!": "x"}, "may only hold"),
        ({"team": "a;b"}, "may only hold"),
        ({"owner": "a", "OWNER": "b"}, "given twice"),
        ({f"tag{n}": "x" for n in range(49)}, "at most 50 tags; with these it would have 51"),
    ],
)
def test_a_tags_put_refuses_what_iam_would(tagged: IamRole, tags: Any, message: str) -> None:
    assert message in refused(T.TAGS_PUT, tagged.arn, {"tags": tags})["payload.tags"]


def test_a_tags_put_accepts_empty_values_and_letters_of_any_script(tagged: IamRole) -> None:
    spec = validate(T.TAGS_PUT, tagged.arn, {"tags": {"équipe": "", "env": "prod/eu-1"}})
    assert spec.payload == {"tags": {"équipe": "", "env": "prod/eu-1"}}


def test_a_tags_put_is_applied_and_reverted_to_the_values_before(
    tagged: IamRole, requester: User
) -> None:
    change = applied(
        T.TAGS_PUT, tagged.arn, {"tags": {"team": "billing", "cost-centre": "42"}}, requester
    )
    assert tags_of(tagged) == {"team": "billing", "env": "prod", "cost-centre": "42"}
    apply(change)
    revert(change)
    assert tags_of(tagged) == {"team": "payments", "env": "prod"}
    revert(change)
    assert tags_of(tagged) == {"team": "payments", "env": "prod"}


def test_a_tags_delete_needs_tags_the_role_has(tagged: IamRole) -> None:
    errors = refused(T.TAGS_DELETE, tagged.arn, {"keys": ["owner"]})
    assert errors == {"payload.keys": "Role payments-api has no tag 'owner'."}
    for keys in ([], "team", [1], ["aws:x"]):
        assert "payload.keys" in refused(T.TAGS_DELETE, tagged.arn, {"keys": keys})


def test_a_tags_delete_is_applied_and_reverted(tagged: IamRole, requester: User) -> None:
    change = applied(T.TAGS_DELETE, tagged.arn, {"keys": ["team"]}, requester)
    assert change.previous == {"team": "payments"}
    assert tags_of(tagged) == {"env": "prod"}
    apply(change)
    revert(change)
    assert tags_of(tagged) == {"team": "payments", "env": "prod"}


# --- permissions boundaries ------------------------------------------------------------


def boundary_of(role: IamRole) -> str | None:
    found = iam_of(role).get_role(RoleName=role.name)["Role"].get("PermissionsBoundary")
    return found["PermissionsBoundaryArn"] if found else None


def test_a_boundary_put_is_applied_and_reverted_to_no_boundary(
    role: IamRole, requester: User
) -> None:
    arn = customer_policy(role.account, "boundary", READ_INVOICES)
    change = applied(T.PERMISSIONS_BOUNDARY_PUT, role.arn, {"policy_arn": arn}, requester)
    assert change.previous is None
    assert boundary_of(role) == arn
    apply(change)
    revert(change)
    assert boundary_of(role) is None


def test_a_boundary_put_is_reverted_to_the_boundary_before(role: IamRole, requester: User) -> None:
    before = customer_policy(role.account, "boundary", READ_INVOICES)
    after = customer_policy(role.account, "wider-boundary", READ_REPORTS)
    iam_of(role).put_role_permissions_boundary(RoleName=role.name, PermissionsBoundary=before)
    synced(role.account)
    errors = refused(T.PERMISSIONS_BOUNDARY_PUT, role.arn, {"policy_arn": before})
    assert "already is the boundary" in errors["payload.policy_arn"]
    change = applied(T.PERMISSIONS_BOUNDARY_PUT, role.arn, {"policy_arn": after}, requester)
    assert boundary_of(role) == after
    revert(change)
    assert boundary_of(role) == before


def test_a_boundary_delete_needs_a_boundary_and_is_reverted_by_putting_it_back(
    role: IamRole, requester: User
) -> None:
    assert (
        "no permissions boundary"
        in refused(T.PERMISSIONS_BOUNDARY_DELETE, role.arn, {})["target_arn"]
    )
    arn = customer_policy(role.account, "boundary", READ_INVOICES)
    iam_of(role).put_role_permissions_boundary(RoleName=role.name, PermissionsBoundary=arn)
    synced(role.account)
    change = applied(T.PERMISSIONS_BOUNDARY_DELETE, role.arn, {}, requester)
    assert change.previous == arn
    assert boundary_of(role) is None
    apply(change)
    revert(change)
    assert boundary_of(role) == arn


# --- customer-managed policies ---------------------------------------------------------


def versions_of(account: AwsAccount, arn: str) -> dict[str, tuple[bool, Any]]:
    """Version id -> (is default, document)."""
    iam = admin_client(account.account_id, "iam")
    found = {}
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        found[version["VersionId"]] = (
            version["IsDefaultVersion"],
            document["PolicyVersion"]["Document"],
        )
    return found


def test_a_managed_policy_create_checks_the_arn_the_name_and_the_document(
    account: AwsAccount,
) -> None:
    arn = f"arn:aws:iam::{account.account_id}:policy/teams/payments/lake-read"
    spec = validate(T.MANAGED_POLICY_CREATE, arn, {"document": SEND_JOBS, "description": "Lake"})
    assert (spec.account_id, spec.previous) == (account.account_id, None)
    assert spec.payload == {"document": SEND_JOBS, "description": "Lake"}
    customer_policy(account, "Lake-Read", READ_INVOICES)
    synced(account)
    errors = refused(T.MANAGED_POLICY_CREATE, arn, {"document": SEND_JOBS})
    assert "already has a policy named lake-read" in errors["target_arn"]
    for target in (
        "arn:aws:iam::aws:policy/Mine",
        f"arn:aws:iam::{account.account_id}:policy/bad name",
        f"arn:aws:iam::{account.account_id}:policy/path-without-slash-endsx/",
        "arn:aws:iam::999999999999:policy/x",
    ):
        assert "target_arn" in refused(T.MANAGED_POLICY_CREATE, target, {"document": SEND_JOBS})
    new = f"arn:aws:iam::{account.account_id}:policy/new"
    assert "payload.document" in refused(T.MANAGED_POLICY_CREATE, new, {"document": ECS_TRUST})
    big = allow("s3:GetObject", resource=[f"arn:aws:s3:::bucket-{n:04}/*" for n in range(300)])
    assert "6144" in refused(T.MANAGED_POLICY_CREATE, new, {"document": big})["payload.document"]
    errors = refused(T.MANAGED_POLICY_CREATE, new, {"document": SEND_JOBS, "description": 3})
    assert "payload.description" in errors


def test_a_managed_policy_is_created_recreated_and_deleted_with_its_versions(
    account: AwsAccount, requester: User
) -> None:
    arn = f"arn:aws:iam::{account.account_id}:policy/teams/jobs-send"
    change = applied(T.MANAGED_POLICY_CREATE, arn, {"document": SEND_JOBS}, requester)
    assert change.outcome == {"policy_arn": arn, "version_id": "v1"}
    iam = admin_client(account.account_id, "iam")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["Path"] == "/teams/"
    apply(change)
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(READ_INVOICES))
    revert(change)
    assert [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]] == []
    revert(change)


def test_a_managed_policy_of_the_same_name_and_another_document_is_not_taken_over(
    account: AwsAccount, requester: User
) -> None:
    arn = f"arn:aws:iam::{account.account_id}:policy/jobs-send"
    change = stored(validate(T.MANAGED_POLICY_CREATE, arn, {"document": SEND_JOBS}), requester)
    customer_policy(account, "jobs-send", READ_INVOICES)
    with pytest.raises(ChangeRefused, match="already exists with another document"):
        apply(change)


def test_reverting_a_managed_policy_create_is_refused_while_it_is_attached(
    role: IamRole, requester: User
) -> None:
    arn = f"arn:aws:iam::{role.account.account_id}:policy/jobs-send"
    change = applied(T.MANAGED_POLICY_CREATE, arn, {"document": SEND_JOBS}, requester)
    iam_of(role).attach_role_policy(RoleName=role.name, PolicyArn=arn)
    with pytest.raises(ChangeRefused, match="still attached to role payments-api"):
        revert(change)
    assert iam_of(role).get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn


def test_a_managed_policy_version_needs_a_customer_policy_in_the_inventory(
    account: AwsAccount,
) -> None:
    arn = customer_policy(account, "jobs-send", SEND_JOBS)
    errors = refused(T.MANAGED_POLICY_VERSION, arn, {"document": READ_INVOICES})
    assert "not in the inventory" in errors["target_arn"]
    synced(account)
    spec = validate(T.MANAGED_POLICY_VERSION, arn, {"document": READ_INVOICES})
    assert (spec.account_id, spec.previous) == (account.account_id, SEND_JOBS)
    errors = refused(T.MANAGED_POLICY_VERSION, arn, {"document": SEND_JOBS})
    assert "current default version" in errors["payload.document"]
    errors = refused(
        T.MANAGED_POLICY_VERSION, "arn:aws:iam::aws:policy/ReadOnlyAccess", {"document": SEND_JOBS}
    )
    assert "AWS-managed" in errors["target_arn"]


def test_a_managed_policy_version_becomes_the_default_and_revert_restores_the_old_one(
    account: AwsAccount, requester: User
) -> None:
    arn = customer_policy(account, "jobs-send", SEND_JOBS)
    synced(account)
    change = applied(T.MANAGED_POLICY_VERSION, arn, {"document": READ_INVOICES}, requester)
    assert change.outcome == {
        "version_id": "v2",
        "previous_version_id": "v1",
        "pruned_version_id": None,
        "pruned_document": None,
    }
    assert versions_of(account, arn) == {"v1": (False, SEND_JOBS), "v2": (True, READ_INVOICES)}
    assert changes.change_apply(change=change, session=spoke(change)) == change.outcome
    assert len(versions_of(account, arn)) == 2
    revert(change)
    assert versions_of(account, arn) == {"v1": (True, SEND_JOBS)}
    revert(change)


def test_it_prunes_the_oldest_version_when_five_exist(account: AwsAccount, requester: User) -> None:
    arn = customer_policy(account, "jobs-send", SEND_JOBS)
    iam = admin_client(account.account_id, "iam")
    older = [
        allow("sqs:SendMessage", resource=f"arn:aws:sqs:us-east-1:1:q{n}") for n in (2, 3, 4, 5)
    ]
    for document in older:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document))
    synced(account)
    change = applied(T.MANAGED_POLICY_VERSION, arn, {"document": READ_INVOICES}, requester)
    assert change.outcome == {
        "version_id": "v6",
        "previous_version_id": "v1",
        "pruned_version_id": "v2",
        "pruned_document": older[0],
    }
    after = versions_of(account, arn)
    assert sorted(after) == ["v1", "v3", "v4", "v5", "v6"]
    assert after["v6"] == (True, READ_INVOICES)
    revert(change)
    after = versions_of(account, arn)
    assert after["v1"] == (True, SEND_JOBS)
    assert "v6" not in after
    # The pruned document is back, as a version that is not the default.
    assert [document for default, document in after.values() if not default].count(older[0]) == 1
    assert len(after) == 5


def test_reverting_a_version_no_longer_the_default_leaves_the_newer_default(
    account: AwsAccount, requester: User
) -> None:
    arn = customer_policy(account, "jobs-send", SEND_JOBS)
    synced(account)
    change = applied(T.MANAGED_POLICY_VERSION, arn, {"document": READ_INVOICES}, requester)
    iam = admin_client(account.account_id, "iam")
    iam.create_policy_version(
        PolicyArn=arn, PolicyDocument=json.dumps(READ_REPORTS), SetAsDefault=True
    )
    revert(change)
    assert versions_of(account, arn) == {"v1": (False, SEND_JOBS), "v3": (True, READ_REPORTS)}


# --- resource policies in another account ----------------------------------------------


def lake_statement(role_arn: str, sid: str = "PaymentsRead") -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::acme-lake/*"],
    }


def bucket_policy(account: AwsAccount) -> Any:
    s3 = admin_client(account.account_id, "s3")
    try:
        return json.loads(s3.get_bucket_policy(Bucket="acme-lake")["Policy"])
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
        return None


@pytest.fixture
def lake(other: AwsAccount) -> str:
    admin_client(other.account_id, "s3").create_bucket(Bucket="acme-lake")
    synced(other)
    return "arn:aws:s3:::acme-lake"


def test_a_bucket_policy_change_takes_its_account_from_the_inventory(
    role: IamRole, other: AwsAccount, lake: str
) -> None:
    spec = validate(T.RESOURCE_POLICY_PUT, lake, {"statements": [lake_statement(role.arn)]})
    assert (spec.account_id, spec.previous) == (other.account_id, None)
    errors = refused(
        T.RESOURCE_POLICY_PUT, "arn:aws:s3:::acme-swamp", {"statements": [lake_statement(role.arn)]}
    )
    assert errors == {
        "target_arn": "The bucket acme-swamp is not in the inventory: check the ARN, or sync "
        "its account."
    }
    AwsAccount.objects.filter(pk=other.pk).update(enabled=False)
    errors = refused(T.RESOURCE_POLICY_PUT, lake, {"statements": [lake_statement(role.arn)]})
    assert "does not manage" in errors["target_arn"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("Principal"), "needs a Principal"),
        (lambda s: s.pop("Resource"), "needs a Resource"),
        (lambda s: s.update(NotAction="s3:*"), "not both"),
        (lambda s: s.update(Effect="Maybe"), "Effect"),
        (lambda s: s.update(Action=[]), "not a string or a list of strings"),
        (lambda s: s.update(Principal="someone"), "neither"),
        (lambda s: s.update(Resource=["x"] * 6000), "at most 20480 characters"),
    ],
)
def test_a_bucket_policy_statement_is_checked_for_structure_and_size(
    role: IamRole, lake: str, mutate: Any, message: str
) -> None:
    statement = lake_statement(role.arn)
    mutate(statement)
    errors = refused(T.RESOURCE_POLICY_PUT, lake, {"statements": [statement]})
    assert message in errors["payload.statements"]
    document = {"Version": "2012-10-17", "Statement": [statement]}
    errors = refused(T.RESOURCE_POLICY_PUT, lake, {"document": document})
    assert message in errors["payload.document"]


def test_a_bucket_policy_merge_keeps_others_statements_and_revert_removes_only_its_own(
    role: IamRole, other: AwsAccount, lake: str, requester: User
) -> None:
    change = stored(
        validate(T.RESOURCE_POLICY_PUT, lake, {"statements": [lake_statement(role.arn)]}),
        requester,
    )
    theirs = lake_statement(aws.role_arn(other.account_id, "etl"), sid="EtlRead")
    admin_client(other.account_id, "s3").put_bucket_policy(
        Bucket="acme-lake",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [theirs]}),
    )
    apply(change)
    assert bucket_policy(other)["Statement"] == [theirs, lake_statement(role.arn)]
    apply(change)
    assert bucket_policy(other)["Statement"] == [theirs, lake_statement(role.arn)]
    revert(change)
    assert bucket_policy(other) == {"Version": "2012-10-17", "Statement": [theirs]}


def test_reverting_the_only_statements_of_a_bucket_policy_deletes_it(
    role: IamRole, other: AwsAccount, lake: str, requester: User
) -> None:
    change = applied(
        T.RESOURCE_POLICY_PUT, lake, {"statements": [lake_statement(role.arn)]}, requester
    )
    assert bucket_policy(other) == {
        "Version": "2012-10-17",
        "Statement": [lake_statement(role.arn)],
    }
    revert(change)
    assert bucket_policy(other) is None
    revert(change)


def test_a_bucket_policy_document_replaces_and_revert_restores_the_one_before(
    role: IamRole, other: AwsAccount, lake: str, requester: User
) -> None:
    before = {"Version": "2012-10-17", "Statement": [lake_statement(role.arn, sid="Old")]}
    admin_client(other.account_id, "s3").put_bucket_policy(
        Bucket="acme-lake", Policy=json.dumps(before)
    )
    synced(other)
    document = {"Version": "2012-10-17", "Statement": [lake_statement(role.arn)]}
    change = applied(T.RESOURCE_POLICY_PUT, lake, {"document": document}, requester)
    assert change.previous == before
    assert bucket_policy(other) == document
    revert(change)
    assert bucket_policy(other) == before


def test_reverting_a_bucket_policy_document_with_none_before_deletes_the_policy(
    role: IamRole, other: AwsAccount, lake: str, requester: User
) -> None:
    document = {"Version": "2012-10-17", "Statement": [lake_statement(role.arn)]}
    change = applied(T.RESOURCE_POLICY_PUT, lake, {"document": document}, requester)
    revert(change)
    assert bucket_policy(other) is None


def queue_statement(role_arn: str, queue_arn: str) -> dict[str, Any]:
    return {
        "Sid": "PaymentsSend",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
    }


def test_a_queue_policy_merge_is_applied_and_reverted_in_the_queues_account(
    role: IamRole, other: AwsAccount, requester: User
) -> None:
    sqs = admin_client(other.account_id, "sqs")
    url = sqs.create_queue(QueueName="invoices")["QueueUrl"]
    synced(other)
    arn = f"arn:aws:sqs:us-east-1:{other.account_id}:invoices"
    statement = queue_statement(role.arn, arn)
    wrong_account = arn.replace(other.account_id, "999999999999")
    errors = refused(T.RESOURCE_POLICY_PUT, wrong_account, {"statements": [statement]})
    assert "999999999999" in errors["target_arn"]
    change = applied(T.RESOURCE_POLICY_PUT, arn, {"statements": [statement]}, requester)
    assert change.account_id == other.account_id
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(attributes["Policy"])["Statement"] == [statement]
    apply(change)
    revert(change)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "Policy" not in attributes
    revert(change)


def test_a_topic_policy_merge_keeps_the_topics_default_statement_in_its_region(
    role: IamRole, other: AwsAccount, requester: User
) -> None:
    sns = admin_client(other.account_id, "sns", region=OTHER_REGION)
    arn = sns.create_topic(Name="payments-events")["TopicArn"]
    synced(other)
    statement = {
        "Sid": "PaymentsPublish",
        "Effect": "Allow",
        "Principal": {"AWS": role.arn},
        "Action": "sns:Publish",
        "Resource": arn,
    }
    spec = validate(T.RESOURCE_POLICY_PUT, arn, {"statements": [statement]})
    default = spec.previous
    assert [s["Sid"] for s in default["Statement"]] == ["__default_statement_ID"]
    change = apply(stored(spec, requester))

    def topic_policy() -> Any:
        return json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])

    assert topic_policy()["Statement"] == [*default["Statement"], statement]
    revert(change)
    assert topic_policy() == default


def test_reverting_a_topic_policy_document_with_none_before_leaves_only_the_owner(
    role: IamRole, other: AwsAccount, requester: User
) -> None:
    sns = admin_client(other.account_id, "sns")
    arn = sns.create_topic(Name="payments-events")["TopicArn"]
    synced(other)
    # As if the inventory had read no policy: a topic always has one in AWS.
    change = stored(
        validate(
            T.RESOURCE_POLICY_PUT,
            arn,
            {
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "PaymentsPublish",
                            "Effect": "Allow",
                            "Principal": {"AWS": role.arn},
                            "Action": "sns:Publish",
                            "Resource": arn,
                        }
                    ],
                }
            },
        ),
        requester,
    )
    Change.objects.filter(pk=change.pk).update(previous=None)
    change.refresh_from_db()
    apply(change)
    revert(change)
    policy = json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])
    [only] = policy["Statement"]
    assert only["Condition"] == {"StringEquals": {"AWS:SourceOwner": other.account_id}}


def test_a_topic_policy_may_be_larger_than_a_bucket_policy(
    role: IamRole, other: AwsAccount
) -> None:
    sns = admin_client(other.account_id, "sns")
    arn = sns.create_topic(Name="payments-events")["TopicArn"]
    synced(other)
    statement = {
        "Sid": "Many",
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{n:012}:root" for n in range(700)]},
        "Action": "sns:Publish",
        "Resource": arn,
    }
    validate(T.RESOURCE_POLICY_PUT, arn, {"statements": [statement]})
    statement["Principal"]["AWS"] *= 2
    errors = refused(T.RESOURCE_POLICY_PUT, arn, {"statements": [statement]})
    assert "at most 30720 characters" in errors["payload.statements"]


# --- documents and summaries -----------------------------------------------------------


def change_row(type: str, target_arn: str, payload: dict[str, Any], previous: Any = None) -> Change:
    return Change(
        type=type,
        target_arn=target_arn,
        account_id="111111111111",
        payload=payload,
        previous=previous,
    )


ROLE = "arn:aws:iam::111111111111:role/team/payments-api"


def test_documents_show_a_merge_as_the_policy_before_with_the_statements_merged() -> None:
    ci = {**ECS_TRUST["Statement"][0], "Sid": "Ci", "Principal": {"AWS": "arn:aws:iam::1:root"}}
    change = change_row(T.TRUST_POLICY_UPDATE, ROLE, {"statements": [ci]}, ECS_TRUST)
    assert changes.change_document(change) == (
        ECS_TRUST,
        {"Version": "2012-10-17", "Statement": [*ECS_TRUST["Statement"], ci]},
    )
    change = change_row(T.RESOURCE_POLICY_PUT, "arn:aws:s3:::lake", {"statements": [ci]})
    assert changes.change_document(change) == (None, {"Version": "2012-10-17", "Statement": [ci]})


def test_documents_of_each_type() -> None:
    put = {"policy_name": "read", "document": READ_INVOICES}
    assert changes.change_document(change_row(T.INLINE_POLICY_PUT, ROLE, put, READ_REPORTS)) == (
        READ_REPORTS,
        READ_INVOICES,
    )
    delete = change_row(T.INLINE_POLICY_DELETE, ROLE, {"policy_name": "read"}, READ_REPORTS)
    assert changes.change_document(delete) == (READ_REPORTS, None)
    create = change_row(T.MANAGED_POLICY_CREATE, "arn:aws:iam::1:policy/x", {"document": SEND_JOBS})
    assert changes.change_document(create) == (None, SEND_JOBS)
    trust = change_row(T.TRUST_POLICY_UPDATE, ROLE, {"document": ECS_TRUST}, None)
    assert changes.change_document(trust) == (None, ECS_TRUST)
    tags = change_row(T.TAGS_PUT, ROLE, {"tags": {"a": "b"}})
    assert changes.change_document(tags) == ({}, {"a": "b"})  # values shown to reviewers


@pytest.mark.parametrize(
    ("type", "target", "payload", "previous", "summary"),
    [
        (
            T.INLINE_POLICY_PUT,
            ROLE,
            {"policy_name": "read", "document": {}},
            None,
            "Add inline policy read on role payments-api",
        ),
        (
            T.INLINE_POLICY_PUT,
            ROLE,
            {"policy_name": "read", "document": {}},
            {},
            "Update inline policy read on role payments-api",
        ),
        (
            T.INLINE_POLICY_DELETE,
            ROLE,
            {"policy_name": "read"},
            {},
            "Delete inline policy read from role payments-api",
        ),
        (
            T.MANAGED_POLICY_ATTACH,
            ROLE,
            {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            None,
            "Attach arn:aws:iam::aws:policy/ReadOnlyAccess to role payments-api",
        ),
        (
            T.MANAGED_POLICY_DETACH,
            ROLE,
            {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            None,
            "Detach arn:aws:iam::aws:policy/ReadOnlyAccess from role payments-api",
        ),
        (
            T.TRUST_POLICY_UPDATE,
            ROLE,
            {"document": {}},
            None,
            "Replace the trust policy of role payments-api",
        ),
        (
            T.TRUST_POLICY_UPDATE,
            ROLE,
            {"statements": [{}]},
            None,
            "Add 1 statement to the trust policy of role payments-api",
        ),
        (
            T.TAGS_PUT,
            ROLE,
            {"tags": {"team": "a", "env": "b"}},
            None,
            "Set tags team=a, env=b on role payments-api",
        ),
        (T.TAGS_DELETE, ROLE, {"keys": ["team"]}, None, "Remove tags team from role payments-api"),
        (
            T.PERMISSIONS_BOUNDARY_PUT,
            ROLE,
            {"policy_arn": "arn:aws:iam::1:policy/b"},
            None,
            "Set the permissions boundary of role payments-api to arn:aws:iam::1:policy/b",
        ),
        (
            T.PERMISSIONS_BOUNDARY_DELETE,
            ROLE,
            {},
            None,
            "Remove the permissions boundary of role payments-api",
        ),
        (
            T.MANAGED_POLICY_CREATE,
            "arn:aws:iam::111111111111:policy/teams/lake-read",
            {"document": {}},
            None,
            "Create managed policy lake-read in account 111111111111",
        ),
        (
            T.MANAGED_POLICY_VERSION,
            "arn:aws:iam::111111111111:policy/lake-read",
            {"document": {}},
            {},
            "New default version of managed policy lake-read",
        ),
        (
            T.RESOURCE_POLICY_PUT,
            "arn:aws:s3:::acme-invoices",
            {"statements": [{}, {}]},
            None,
            "Add 2 statements to the bucket policy of acme-invoices",
        ),
        (
            T.RESOURCE_POLICY_PUT,
            "arn:aws:sqs:us-east-1:111111111111:jobs",
            {"document": {}},
            None,
            "Replace the queue policy of jobs",
        ),
        (
            T.RESOURCE_POLICY_PUT,
            "arn:aws:sns:eu-west-1:111111111111:events",
            {"statements": [{}]},
            None,
            "Add 1 statement to the topic policy of events",
        ),
    ],
)
def test_each_change_has_a_one_line_summary(
    type: str, target: str, payload: dict[str, Any], previous: Any, summary: str
) -> None:
    assert changes.change_summary(change_row(type, target, payload, previous)) == summary


def test_summaries_and_documents_never_fail_on_a_payload_of_unexpected_shape() -> None:
    for type in [*T.values, "retired_type"]:
        payloads: list[Any] = [{"tags": 1, "keys": 2, "statements": "x", "policy_name": None}, []]
        for payload in payloads:
            weird = Change(type=type, target_arn="garbage", account_id="", payload=payload)
            assert changes.change_summary(weird)
            document = changes.change_document(weird)
            assert document is None or len(document) == 2


def test_the_summary_of_a_trust_change_names_who_gets_in() -> None:
    statement = {
        "Sid": "Outside",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::999999999999:root"], "Federated": "cognito"},
        "Action": "sts:AssumeRole",
    }
    merge = change_row(T.TRUST_POLICY_UPDATE, ROLE, {"statements": [statement]})
    assert changes.change_summary(merge) == (
        "Add 1 statement to the trust policy of role payments-api, allowing "
        "arn:aws:iam::999999999999:root, cognito"
    )
    replace = change_row(
        T.TRUST_POLICY_UPDATE,
        ROLE,
        {"document": {"Version": "2012-10-17", "Statement": [{**statement, "Principal": "*"}]}},
    )
    assert changes.change_summary(replace).endswith("allowing *")
