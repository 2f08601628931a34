from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from iamportal.parsers import JSON_MAX_DEPTH, json_nesting_depth
from iamportal.services import TOKEN_LIFETIMES_DAYS


def _too_deep(value: Any) -> bool:
    return isinstance(value, str) and json_nesting_depth(value) > JSON_MAX_DEPTH


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field, refusing deeply nested input with a form error:
    Django's own catches only decoding errors, so deep nesting is a RecursionError
    (a 500) both when it cleans the value and when it shows the form again."""

    def to_python(self, value: Any) -> Any:
        if _too_deep(value):
            raise ValidationError(f"The JSON is nested more than {JSON_MAX_DEPTH} levels deep.")
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if not self.disabled and _too_deep(data):
            return InvalidJSONInput(data)
        return super().bound_data(data, initial)


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “nightly audit script”.",
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        coerce=int,
        choices=[(days, f"in {days} days") for days in TOKEN_LIFETIMES_DAYS] + [(0, "never")],
        initial=90,
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError("Give the token a name.")
        return name


class LocalLoginForm(AuthenticationForm):
    """Django's login form, with a clear message when password sign-in is limited."""

    def clean(self) -> dict[str, object]:
        if settings.IAMPORTAL_LOCAL_LOGIN == "false":
            raise ValidationError("Password sign-in is turned off: use single sign-on.")
        return super().clean()

    def get_invalid_login_error(self) -> ValidationError:
        throttled = getattr(self.request, "login_throttled", None)
        if throttled is not None:
            return ValidationError(throttled.message)
        if settings.IAMPORTAL_LOCAL_LOGIN == "superusers":
            return ValidationError(
                "Password sign-in is limited to break-glass administrator accounts; "
                "use single sign-on, or check the user name and password."
            )
        return ValidationError("That user name and password did not match. Try again.")
