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


class RevokeSessionsForm(forms.Form):
    """Whose sessions to end on a role, and why (kept with the revocation)."""

    user = forms.CharField(
        label="User",
        max_length=254,
        help_text="Their user name or email address in iamportal.",
        error_messages={"required": "Name the user whose sessions to end."},
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={
            "required": "Say why: it is kept with the revocation.",
            "max_length": "The reason can be at most 500 characters.",
        },
    )


# The database user names `rds-db:connect` resources take (requests_app/policy/permission_map.py).
DB_USER_PATTERN = r"^[A-Za-z0-9_.@-]{1,63}$"


class DatabasePasswordForm(forms.Form):
    """Which of the user's roles signs the token, and the database user it is for."""

    role = forms.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        error_messages={"required": "Choose the role to connect with."},
    )
    db_user = forms.RegexField(
        label="Database user",
        regex=DB_USER_PATTERN,
        max_length=63,
        error_messages={
            "required": "Name the database user to connect as.",
            "invalid": "A database user name is 1-63 letters, digits and _ . @ -.",
        },
    )
