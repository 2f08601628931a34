"""Policy templates: placeholders and their declarations, filling them in
safely, and merging filled-in templates into one policy."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.policy.templates import (
    Parameter,
    TemplateInvalid,
    policy_merge,
    template_check,
    template_parameters,
    template_placeholders,
    template_render,
)
from tests.policy.cases import PARAMETERS, READ_BUCKET

# --- placeholders and parameters ----------------------------------------------------


def test_it_lists_placeholders_once_in_order_of_use() -> None:
    assert template_placeholders(READ_BUCKET) == ["bucket", "prefix"]
    assert template_placeholders('{"a": "{{x}}{{ y }}{{x}}", "b": "{not} {{1x}}"}') == ["x", "y"]


def test_it_reads_declared_parameters() -> None:
    assert template_parameters(PARAMETERS) == [
        Parameter(name="bucket", label="Bucket name", example="acme-data"),
        Parameter(name="prefix", label="Key prefix", default="reports/"),
    ]
    assert template_parameters([]) == []
    assert template_parameters([{"name": "queue"}]) == [Parameter(name="queue", label="queue")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"bucket": "Bucket"}, "Parameters are a JSON list"),
        (["bucket"], "is not an object"),
        ([{"label": "Bucket"}], "needs a name"),
        ([{"name": "1bucket"}], "needs a name"),
        ([{"name": "bucket"}, {"name": "bucket"}], "declared twice"),
        ([{"name": "bucket", "label": 3}], "must be a string"),
        ([{"name": "bucket", "pattern": ".*"}], "unknown keys: pattern"),
        ([{"name": f"p{n}"} for n in range(21)], "at most 20 parameters"),
    ],
)
def test_it_refuses_malformed_parameters(raw: Any, message: str) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_parameters(raw)
    assert message in refused.value.errors["parameters"]


def test_it_fills_in_a_template() -> None:
    document = template_render(
        document=READ_BUCKET,
        parameters=PARAMETERS,
        values={"bucket": " acme-prod-data ", "prefix": "2026/"},
    )
    assert document["Statement"][0]["Resource"] == "arn:aws:s3:::acme-prod-data/2026/*"


def test_a_value_can_never_break_out_of_its_json_string() -> None:
    document = template_render(
        document=READ_BUCKET,
        parameters=PARAMETERS,
        values={"bucket": 'x", "Effect": "Deny', "prefix": "a\\b"},
    )
    statement = document["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == 'arn:aws:s3:::x", "Effect": "Deny/a\\b*'


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"prefix": "x"}, "bucket", "Give a value for Bucket name"),
        ({"bucket": "*", "prefix": "x"}, "bucket", "cannot contain wildcards"),
        ({"bucket": "acme", "prefix": "re?"}, "prefix", "cannot contain wildcards"),
        ({"bucket": "a\nb", "prefix": "x"}, "bucket", "control characters"),
        ({"bucket": "a" * 257, "prefix": "x"}, "bucket", "at most 256 characters"),
    ],
)
def test_it_refuses_bad_values(values: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_render(document=READ_BUCKET, parameters=PARAMETERS, values=values)
    assert message in refused.value.errors[field]


def test_a_template_that_does_not_make_an_object_is_refused_when_filled() -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_render(document='["{{a}}"]', parameters=[{"name": "a"}], values={"a": "b"})
    assert "JSON object" in refused.value.errors["document"]


def test_check_fills_placeholders_with_sample_values() -> None:
    sample = template_check(document=READ_BUCKET, parameters=PARAMETERS)
    assert sample["Statement"][0]["Resource"] == "arn:aws:s3:::acme-data/reports/*"
    sample = template_check(
        document=READ_BUCKET.replace("{{ prefix }}", ""), parameters=[{"name": "bucket"}]
    )
    assert sample["Statement"][0]["Resource"] == "arn:aws:s3:::sample-bucket/*"


@pytest.mark.parametrize(
    ("document", "parameters", "field", "message"),
    [
        (READ_BUCKET, PARAMETERS[:1], "parameters", "missing: {{prefix}}"),
        ('{"Resource": {{bucket}}}', PARAMETERS[:1], "document", "not JSON once"),
        ('{"Version": "2012-10-17",', [], "document", "not JSON once"),
        ("[]", [], "document", "must be a JSON object"),
        ("{}" + " " * 20_000, [], "document", "at most 20000 characters"),
    ],
)
def test_check_refuses_a_template_that_cannot_work(
    document: str, parameters: Any, field: str, message: str
) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_check(document=document, parameters=parameters)
    assert message in refused.value.errors[field]


def test_merging_keeps_every_statement_once_with_unique_sids() -> None:
    first = {"Version": "2012-10-17", "Statement": [{"Sid": "Read", "Effect": "Allow"}]}
    second = {"Statement": {"Sid": "Read", "Effect": "Deny"}}
    merged = policy_merge([first, second, first])
    assert merged == {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Read", "Effect": "Allow"}, {"Sid": "Read2", "Effect": "Deny"}],
    }
