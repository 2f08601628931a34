"""Filling in a PolicyTemplate: its {{placeholders}}, their declarations and values.

Pure functions: no database, no request. The admin form, the wizard and the
tests use them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
MAX_PARAMETERS = 20
VALUE_MAX_LENGTH = 256
DOCUMENT_MAX_LENGTH = 20_000
# A value becomes part of an ARN or a condition: a wildcard would silently widen
# what the template grants, and control characters have no place in either.
_FORBIDDEN_IN_VALUE = re.compile(r"[*?\x00-\x1f\x7f]")


class TemplateInvalid(ValueError):
    """A template (or the values for it) that cannot be used: `errors` maps a
    field to its user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    help: str = ""
    example: str = ""
    default: str = ""


def template_placeholders(document: str) -> list[str]:
    """The placeholder names used in `document`, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(document):
        seen.setdefault(match.group(1), None)
    return list(seen)


def template_parameters(raw: Any) -> list[Parameter]:
    """The declared parameters, validated. Raises TemplateInvalid."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise TemplateInvalid(
            {"parameters": 'Parameters are a JSON list: [{"name": "bucket", "label": "Bucket"}].'}
        )
    if len(raw) > MAX_PARAMETERS:
        raise TemplateInvalid(
            {"parameters": f"A template has at most {MAX_PARAMETERS} parameters."}
        )
    parameters: list[Parameter] = []
    names: set[str] = set()
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise TemplateInvalid(
                {"parameters": f"Parameter {position} is not an object with a name and a label."}
            )
        name = item.get("name")
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            raise TemplateInvalid(
                {
                    "parameters": f"Parameter {position} needs a name of letters, digits and _ "
                    "(not starting with a digit, at most 40 characters)."
                }
            )
        if name in names:
            raise TemplateInvalid({"parameters": f"The parameter {name!r} is declared twice."})
        names.add(name)
        texts: dict[str, str] = {}
        for key in ("label", "help", "example", "default"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise TemplateInvalid(
                    {"parameters": f"The {key} of parameter {name!r} must be a string."}
                )
            texts[key] = value.strip()
        unknown = set(item) - {"name", "label", "help", "example", "default"}
        if unknown:
            raise TemplateInvalid(
                {
                    "parameters": f"Parameter {name!r} has unknown keys: "
                    f"{', '.join(sorted(unknown))}. Use name, label, help, example, default."
                }
            )
        parameters.append(
            Parameter(
                name=name,
                label=texts["label"] or name,
                help=texts["help"],
                example=texts["example"],
                default=texts["default"],
            )
        )
    return parameters


def template_value_check(parameter: Parameter, value: str) -> str:
    """The value, stripped, or a ValueError with a user-facing message."""
    value = value.strip()
    if not value:
        raise ValueError(f"Give a value for {parameter.label}.")
    if len(value) > VALUE_MAX_LENGTH:
        raise ValueError(f"{parameter.label} is at most {VALUE_MAX_LENGTH} characters.")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(
            f"{parameter.label} cannot contain wildcards (* or ?) or control characters: "
            "name the resource exactly."
        )
    return value


def template_fill(document: str, values: dict[str, str]) -> str:
    """`document` with every {{placeholder}} replaced by its value, escaped for a
    JSON string so a value can never end the string it sits in. Raises
    TemplateInvalid naming a placeholder without a value."""
    missing = [name for name in template_placeholders(document) if name not in values]
    if missing:
        raise TemplateInvalid({"values": f"No value for {', '.join(missing)}."})
    return PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1], document)


def template_render(*, document: str, parameters: Any, values: dict[str, str]) -> dict[str, Any]:
    """The policy document the template makes with `values`. Raises TemplateInvalid."""
    declared = template_parameters(parameters)
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for parameter in declared:
        try:
            clean[parameter.name] = template_value_check(parameter, values.get(parameter.name, ""))
        except ValueError as exc:
            errors[parameter.name] = str(exc)
    if errors:
        raise TemplateInvalid(errors)
    try:
        filled = json.loads(template_fill(document, clean))
    except (ValueError, RecursionError) as exc:
        raise TemplateInvalid(
            {"document": f"The template does not make a JSON document: {exc}"}
        ) from exc
    if not isinstance(filled, dict):
        raise TemplateInvalid({"document": "The template does not make a JSON object."})
    return filled


def sample_value(parameter: Parameter) -> str:
    """A stand-in value for checking a template before anyone fills it in."""
    return parameter.example or parameter.default or f"sample-{parameter.name}"


def template_check(*, document: str, parameters: Any) -> dict[str, Any]:
    """Check a template as an admin saves it: parameters well formed, every
    placeholder declared, JSON once filled with sample values. Returns the sample
    document; raises TemplateInvalid."""
    if len(document) > DOCUMENT_MAX_LENGTH:
        raise TemplateInvalid(
            {"document": f"A template document is at most {DOCUMENT_MAX_LENGTH} characters."}
        )
    declared = template_parameters(parameters)
    names = {p.name for p in declared}
    undeclared = [name for name in template_placeholders(document) if name not in names]
    if undeclared:
        listed = ", ".join("{{" + name + "}}" for name in undeclared)
        raise TemplateInvalid(
            {"parameters": f"Declare every placeholder in the parameters; missing: {listed}."}
        )
    try:
        filled = json.loads(template_fill(document, {p.name: sample_value(p) for p in declared}))
    except (ValueError, RecursionError) as exc:
        raise TemplateInvalid(
            {
                "document": "The document is not JSON once its placeholders are filled in "
                f"with sample values: {exc}"
            }
        ) from exc
    if not isinstance(filled, dict):
        raise TemplateInvalid({"document": "The document must be a JSON object."})
    return filled


def policy_merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy with the statements of every document (a generated policy and
    filled-in templates), identical statements once, and Sids made unique: IAM
    rejects a policy whose Sids repeat."""
    statements: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    sids: set[str] = set()
    for document in documents:
        raw = document.get("Statement", [])
        for statement in raw if isinstance(raw, list) else [raw]:
            if not isinstance(statement, dict):
                continue
            bare = {k: v for k, v in statement.items() if k != "Sid"}
            if bare in seen:
                continue
            seen.append(bare)
            statement = dict(statement)
            sid = statement.get("Sid")
            if isinstance(sid, str) and sid:
                number = 1
                while statement["Sid"] in sids:
                    number += 1
                    statement["Sid"] = f"{sid}{number}"
                sids.add(statement["Sid"])
            statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}
