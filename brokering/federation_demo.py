"""A stand-in for the AWS federation endpoint, so the Console button works in
the demo without AWS. `make demo` turns it on (IAMPORTAL_DEMO_FEDERATION) and
points IAMPORTAL_FEDERATION_URL here.

`Action=getSigninToken`, POSTed as a form (credentials never travel in a
URL, where proxies and access logs would keep them), checks the session
credentials with STS GetCallerIdentity, as AWS does, and answers a short-lived
signed token naming the caller; `Action=login` (the browser's GET) shows who is
signed in where, in place of the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import AwsAccount
from iamportal import aws
from iamportal.parsers import json_load_bounded

SALT = "iamportal.demo-federation"
# AWS sign-in tokens are good for 15 minutes.
TOKEN_MAX_AGE_SECONDS = 15 * 60


class InvalidSession(Exception):
    pass


@dataclass(frozen=True)
class DemoSignIn:
    caller_arn: str
    account_id: str
    role_name: str
    session_name: str


def signin_token(session: str) -> str:
    """A sign-in token for the credentials in `session`, the JSON document
    getSigninToken takes ({"sessionId", "sessionKey", "sessionToken"})."""
    try:
        document = json_load_bounded(session)
        credentials = aws.new_session(
            aws_access_key_id=str(document["sessionId"]),
            aws_secret_access_key=str(document["sessionKey"]),
            aws_session_token=str(document["sessionToken"]),
            region_name=aws.default_region(),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidSession(
            "Session must be JSON with sessionId, sessionKey and sessionToken."
        ) from None
    try:
        identity = aws.client("sts", session=credentials).get_caller_identity()
    except (ClientError, BotoCoreError):
        raise InvalidSession("AWS did not accept the session credentials.") from None
    return signing.dumps({"arn": identity["Arn"], "account": identity["Account"]}, salt=SALT)


def signin_verify(token: str) -> DemoSignIn:
    try:
        value = signing.loads(token, salt=SALT, max_age=TOKEN_MAX_AGE_SECONDS)
        arn, account_id = str(value["arn"]), str(value["account"])
    except (signing.BadSignature, KeyError, TypeError):
        raise InvalidSession("The sign-in token is invalid or has expired.") from None
    # arn:aws:sts::<account>:assumed-role/<role name>/<session name>
    resource = arn.split(":", 5)[-1]
    role, _, session_name = resource.partition("/")[2].rpartition("/")
    return DemoSignIn(
        caller_arn=arn,
        account_id=account_id,
        role_name=role.rpartition("/")[2],
        session_name=session_name,
    )


def _get_signin_token(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse(
            {"error": "getSigninToken takes the Session in a POST body, never in the URL."},
            status=405,
            headers={"Allow": "POST"},
        )
    try:
        token = signin_token(request.POST.get("Session", ""))
    except InvalidSession as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"SigninToken": token})


def _login(request: HttpRequest) -> HttpResponse:
    try:
        signed_in = signin_verify(request.GET.get("SigninToken", ""))
    except InvalidSession as exc:
        return render(request, "brokering/demo_signed_in.html", {"error": str(exc)}, status=400)
    account_name = (
        AwsAccount.objects.filter(account_id=signed_in.account_id)
        .values_list("name", flat=True)
        .first()
    )
    context = {
        "signed_in": signed_in,
        "account_name": account_name or "",
        "destination": request.GET.get("Destination", ""),
    }
    return render(request, "brokering/demo_signed_in.html", context)


@csrf_exempt  # AWS's endpoint, which this stands in for, is called server to server
@require_http_methods(["GET", "POST"])
@never_cache
def federation(request: HttpRequest) -> HttpResponse:
    if not settings.IAMPORTAL_DEMO_FEDERATION:
        raise Http404("No such page.")
    if "Session" in request.GET:
        # Credentials in a URL end up in access logs: refuse them outright.
        return JsonResponse({"error": "The Session must not be sent in the URL."}, status=400)
    action = request.POST.get("Action", "") or request.GET.get("Action", "")
    if action == "getSigninToken":
        return _get_signin_token(request)
    if action == "login" and request.method == "GET":
        return _login(request)
    return JsonResponse({"error": "Action must be getSigninToken or login."}, status=400)
