from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import AwsAccount, CloudResource
from accounts.selectors import (
    CURSOR_MAX_LENGTH,
    SEARCH_MAX_LENGTH,
    TAG_MAX_LENGTH,
    UNCHANGED_MAX_DAYS,
    Cursor,
    PolicyFilters,
    cursor_decode,
    entry_types,
    resource_types,
)


class RoleSearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        error_messages={
            "max_length": f"Search text can be at most {SEARCH_MAX_LENGTH} characters: "
            "a name or a part of an ARN."
        },
    )
    account = forms.ModelChoiceField(
        queryset=AwsAccount.objects.only("account_id", "name").order_by("name", "account_id"),
        to_field_name="account_id",
        required=False,
        empty_label="All accounts",
        error_messages={"invalid_choice": "There is no such account."},
    )

    usage = forms.ChoiceField(
        label="Usage",
        required=False,
        choices=[("", "Any"), ("unused", "Has unused permissions")],
        error_messages={"invalid_choice": "Choose any usage, or unused permissions."},
    )

    @property
    def filters(self) -> list[forms.BoundField]:
        """The choices the search form shows next to the text, in this order."""
        return [self["account"], self["usage"]]

    @property
    def unused_only(self) -> bool:
        return self.cleaned_data.get("usage") == "unused"

    @property
    def account_id(self) -> str | None:
        account = self.cleaned_data.get("account")
        return account.account_id if account is not None else None


class ResourceSearchForm(RoleSearchForm):
    usage = None  # type: ignore[assignment]  # roles only
    type = forms.ChoiceField(
        label="Type",
        required=False,
        choices=[("", "All types"), *CloudResource.Type.choices],
        error_messages={"invalid_choice": "Choose a type from the list."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # AWS Config brings any type the inventory holds.
        self.fields["type"].choices = [("", "All types"), *resource_types()]  # type: ignore[attr-defined]

    @property
    def filters(self) -> list[forms.BoundField]:
        return [self["type"], self["account"]]


class IdentitySearchForm(RoleSearchForm):
    usage = None  # type: ignore[assignment]  # roles only
    kind = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[("", "Users"), ("groups", "Groups")],
        error_messages={"invalid_choice": "Choose users or groups."},
    )

    @property
    def filters(self) -> list[forms.BoundField]:
        return [self["account"]]

    @property
    def wants_groups(self) -> bool:
        return self.cleaned_data.get("kind") == "groups"


class PolicySearchForm(RoleSearchForm):
    """The Policies page's filters, shared by its exports. `after` and `before`
    are the keyset cursors of the page links."""

    type = forms.ChoiceField(
        label="Type",
        required=False,
        error_messages={"invalid_choice": "There is no such type of item."},
    )
    tag = forms.CharField(
        label="Tag",
        required=False,
        max_length=TAG_MAX_LENGTH,
        error_messages={
            "max_length": f"A tag filter can be at most {TAG_MAX_LENGTH} characters: "
            "a key, or key=value."
        },
    )
    has_policy = forms.BooleanField(label="Has a resource policy", required=False)
    public = forms.BooleanField(label="Public", required=False)
    unchanged_days = forms.IntegerField(
        label="Not changed in (days)",
        required=False,
        min_value=1,
        max_value=UNCHANGED_MAX_DAYS,
        error_messages={
            "invalid": "Not changed in: a number of days.",
            "min_value": "Not changed in: at least 1 day.",
            "max_value": f"Not changed in: at most {UNCHANGED_MAX_DAYS:,} days.",
        },
    )
    after = forms.CharField(required=False, max_length=CURSOR_MAX_LENGTH)
    before = forms.CharField(required=False, max_length=CURSOR_MAX_LENGTH)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # AWS Config brings any type the inventory holds.
        self.fields["type"].choices = [("", "All types"), *entry_types()]  # type: ignore[attr-defined]

    def clean_tag(self) -> tuple[str, str | None] | None:
        text = self.cleaned_data["tag"].strip()
        if not text:
            return None
        key, equals, value = text.partition("=")
        if not key.strip():
            raise forms.ValidationError("A tag filter needs a key: key, or key=value.")
        return key.strip(), value.strip() if equals else None

    def _cursor(self, name: str) -> Cursor | None:
        text = self.cleaned_data[name]
        if not text:
            return None
        cursor = cursor_decode(text)
        if cursor is None:
            raise forms.ValidationError(
                "This page link is broken: start again from the first page."
            )
        return cursor

    def clean_after(self) -> Cursor | None:
        return self._cursor("after")

    def clean_before(self) -> Cursor | None:
        return self._cursor("before")

    @property
    def filters(self) -> list[forms.BoundField]:
        return [self["type"], self["account"]]

    @property
    def criteria(self) -> PolicyFilters:
        data = self.cleaned_data
        return PolicyFilters(
            query=data["q"],
            account_id=self.account_id,
            type=data["type"] or None,
            tag=data["tag"],
            has_policy=data["has_policy"],
            public=data["public"],
            unchanged_days=data["unchanged_days"],
        )


class GlobalSearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        error_messages={
            "max_length": f"Search text can be at most {SEARCH_MAX_LENGTH} characters: "
            "a name or a part of an ARN."
        },
    )
