"""Trust policy statements from presets: who may assume a role, said in plain
terms (an AWS service, another role by its exact ARN, another account with an
ExternalId, a SAML or OpenID Connect provider) and written as the statement IAM
expects, with the condition each kind of principal needs to be safe."""

from __future__ import annotations

import re
from typing import Any

from requests_app.policy.limits import PARTITIONS
from requests_app.policy.lint_rules import POLICY_VERSION

PRESETS: tuple[tuple[str, str], ...] = (
    ("service", "An AWS service (e.g. lambda.amazonaws.com)"),
    ("role", "Another role, by its exact ARN"),
    ("account", "Another AWS account, with an ExternalId"),
    ("saml", "A SAML identity provider (its ARN)"),
    ("oidc", "An OpenID Connect provider (its ARN and the audience)"),
)
_PARTITION = "|".join(re.escape(p) for p in PARTITIONS)
_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,100}\.amazonaws\.com(\.cn)?")
_ROLE_RE = re.compile(rf"arn:(?:{_PARTITION}):iam::\d{{12}}:role/[\w+=,.@/-]{{1,576}}")
_ACCOUNT_RE = re.compile(r"\d{12}")
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}")
_SAML_RE = re.compile(rf"arn:(?:{_PARTITION}):iam::\d{{12}}:saml-provider/[\w.-]{{1,128}}")
_OIDC_RE = re.compile(rf"arn:(?:{_PARTITION}):iam::\d{{12}}:oidc-provider/([\w.:/-]{{1,255}})")
_AUDIENCE_RE = re.compile(r"[\w.:/@-]{1,255}")


class PresetInvalid(ValueError):
    """What to fix in a preset: `field` is "value" or "extra"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def trust_statement(kind: str, value: str, extra: str = "") -> dict[str, Any]:
    """The statement that lets the principal `value` of preset `kind` assume the
    role; `extra` is the ExternalId (account) or the audience (oidc)."""
    value, extra = value.strip(), extra.strip()
    if kind == "service":
        if not _SERVICE_RE.fullmatch(value):
            raise PresetInvalid("value", "Name a service principal such as lambda.amazonaws.com.")
        return _statement(value, {"Service": value}, "sts:AssumeRole")
    if kind == "role":
        if not _ROLE_RE.fullmatch(value):
            raise PresetInvalid(
                "value", "Give the role's exact ARN, such as arn:aws:iam::123456789012:role/name."
            )
        return _statement(value, {"AWS": value}, "sts:AssumeRole")
    if kind == "account":
        if not _ACCOUNT_RE.fullmatch(value):
            raise PresetInvalid("value", "An AWS account id is exactly 12 digits.")
        if not _EXTERNAL_ID_RE.fullmatch(extra):
            raise PresetInvalid(
                "extra",
                "Another account may assume the role only with an ExternalId: 2-1224 "
                "letters, digits or +=,.@:/-_ characters.",
            )
        return _statement(
            f"account {value}",
            {"AWS": f"arn:aws:iam::{value}:root"},
            "sts:AssumeRole",
            {"StringEquals": {"sts:ExternalId": extra}},
        )
    if kind == "saml":
        if not _SAML_RE.fullmatch(value):
            raise PresetInvalid(
                "value", "Give the provider's ARN: arn:aws:iam::<account>:saml-provider/<name>."
            )
        return _statement(
            value,
            {"Federated": value},
            "sts:AssumeRoleWithSAML",
            {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        )
    if kind == "oidc":
        match = _OIDC_RE.fullmatch(value)
        if match is None:
            raise PresetInvalid(
                "value", "Give the provider's ARN: arn:aws:iam::<account>:oidc-provider/<host>."
            )
        if not _AUDIENCE_RE.fullmatch(extra):
            raise PresetInvalid(
                "extra",
                "Give the audience (client id) tokens must carry, such as sts.amazonaws.com.",
            )
        return _statement(
            value,
            {"Federated": value},
            "sts:AssumeRoleWithWebIdentity",
            {"StringEquals": {f"{match[1]}:aud": extra}},
        )
    raise PresetInvalid("kind", f"Choose one of: {', '.join(k for k, _ in PRESETS)}.")


def _statement(
    subject: str, principal: dict[str, str], action: str, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    sid = "Trust" + "".join(word.capitalize() for word in re.split(r"[^A-Za-z0-9]+", subject))
    statement: dict[str, Any] = {
        "Sid": sid[:100],
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def trust_with(document: Any, statement: dict[str, Any]) -> dict[str, Any]:
    """`document` (a trust policy, or nothing) with `statement` added, replacing
    a statement of the same Sid."""
    statements = []
    if isinstance(document, dict):
        found = document.get("Statement")
        statements = [found] if isinstance(found, dict) else list(found or [])
    statements = [
        s for s in statements if not (isinstance(s, dict) and s.get("Sid") == statement["Sid"])
    ]
    return {"Version": POLICY_VERSION, "Statement": [*statements, statement]}
