from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from iamportal.services import TOKEN_LIFETIMES_DAYS


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
