from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import AwsAccount, CloudResource
from accounts.selectors import SEARCH_MAX_LENGTH, resource_types


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
