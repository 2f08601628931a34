from __future__ import annotations

from django import forms

# Longer input is refused: no ARN is longer, and nothing useful is.
SEARCH_MAX_LENGTH = 200
REDIRECT_MAX_LENGTH = 2048


class MyRolesSearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        error_messages={
            "max_length": f"Search text can be at most {SEARCH_MAX_LENGTH} characters: "
            "part of a role name, an account or an ARN."
        },
    )


class ConsoleSignInForm(forms.Form):
    """Where to land in the console (a deep link); checked by
    brokering.services.console_destination, only bounded here."""

    redirect = forms.CharField(
        required=False,
        max_length=REDIRECT_MAX_LENGTH,
        error_messages={
            "max_length": f"The redirect can be at most {REDIRECT_MAX_LENGTH} characters."
        },
    )
