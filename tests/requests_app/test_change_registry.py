"""The registry of change types: one complete `ChangeType` for every
`Change.Type`, and what the services learn from it (which types must name the
request's role, which are linted, what two requests must not both set)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from requests_app.changes import (
    CHANGE_TYPES,
    ChangeRefused,
    ChangeType,
    change_slots,
    change_type,
)
from requests_app.models import Change

T = Change.Type
ROLE = "arn:aws:iam::111111111111:role/payments-api"
CALLABLES = ("validate", "apply", "revert", "guard", "document", "summary", "slots")


def test_every_change_type_has_a_registry_entry_with_every_field_set() -> None:
    assert set(CHANGE_TYPES) == set(T.values)
    for value in T.values:
        kind = change_type(value)
        assert kind.type == value
        for name in CALLABLES:
            assert callable(getattr(kind, name)), f"{value} has no {name}"
        assert isinstance(kind.noun, str)
        assert kind.noun.strip(), f"{value} has no noun"
        assert isinstance(kind.targets_role, bool)
        assert isinstance(kind.linted, bool)


def test_a_change_type_cannot_leave_a_field_out() -> None:
    fields = dataclasses.fields(ChangeType)
    assert {f.name for f in fields} >= {*CALLABLES, "type", "noun", "targets_role", "linted"}
    for field in fields:
        assert field.default is dataclasses.MISSING, field.name
        assert field.default_factory is dataclasses.MISSING, field.name
    with pytest.raises(TypeError):
        ChangeType(
            **{
                name: getattr(CHANGE_TYPES[T.TAGS_PUT], name)
                for name in {f.name for f in fields} - {"revert"}
            }
        )


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ChangeRefused, match="does not know changes of type 'retired_type'"):
        change_type("retired_type")


def test_the_changes_to_a_role_are_the_ones_that_must_name_the_requests_role() -> None:
    assert {k for k, v in CHANGE_TYPES.items() if v.targets_role} == {
        T.INLINE_POLICY_PUT,
        T.INLINE_POLICY_DELETE,
        T.MANAGED_POLICY_ATTACH,
        T.MANAGED_POLICY_DETACH,
        T.TRUST_POLICY_UPDATE,
        T.TAGS_PUT,
        T.TAGS_DELETE,
        T.PERMISSIONS_BOUNDARY_PUT,
        T.PERMISSIONS_BOUNDARY_DELETE,
        T.ROLE_CREATE,
        T.ROLE_DELETE,
        T.ROLE_UPDATE,
    }


def test_only_identity_policies_are_linted() -> None:
    assert {k for k, v in CHANGE_TYPES.items() if v.linted} == {
        T.INLINE_POLICY_PUT,
        T.MANAGED_POLICY_CREATE,
        T.MANAGED_POLICY_VERSION,
    }


@pytest.mark.parametrize(
    ("type", "payload", "slots", "noun"),
    [
        (T.INLINE_POLICY_PUT, {"policy_name": "read"}, {("inline", ROLE, "read")}, "inline policy"),
        (T.INLINE_POLICY_DELETE, {"policy_name": "read"}, {("inline", ROLE, "read")}, None),
        (
            T.MANAGED_POLICY_ATTACH,
            {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            {("attachment", ROLE, "arn:aws:iam::aws:policy/ReadOnlyAccess")},
            "managed policy attachment",
        ),
        (
            T.TAGS_PUT,
            {"tags": {"Team": "a", "env": "b"}},
            {("tag", ROLE, "team"), ("tag", ROLE, "env")},
            "tag",
        ),
        (T.TAGS_DELETE, {"keys": ["TEAM"]}, {("tag", ROLE, "team")}, "tag"),
        (T.PERMISSIONS_BOUNDARY_DELETE, {}, {("boundary", ROLE, "")}, "permissions boundary"),
        (T.TRUST_POLICY_UPDATE, {"document": {}}, {("document", ROLE, "")}, "policy"),
        # Statements merged by Sid take no slot: each request's Sids are its own.
        (T.TRUST_POLICY_UPDATE, {"statements": []}, set(), "policy"),
        (T.RESOURCE_POLICY_PUT, {"statements": []}, set(), "policy"),
        (T.MANAGED_POLICY_VERSION, {"document": {}}, {("document", ROLE, "")}, "policy"),
    ],
)
def test_what_each_type_sets_and_what_it_is_called(
    type: str, payload: dict[str, Any], slots: set[tuple[str, str, str]], noun: str | None
) -> None:
    assert change_slots(type=type, target_arn=ROLE, payload=payload) == slots
    if noun is not None:
        assert change_type(type).noun == noun


def test_slots_never_fail_on_a_payload_of_unexpected_shape() -> None:
    for type in [*T.values, "retired_type"]:
        for payload in [[], {"tags": 1, "keys": 2, "policy_name": None}]:
            assert isinstance(change_slots(type=type, target_arn=ROLE, payload=payload), set)
