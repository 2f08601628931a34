"""The paths Weep calls, exactly as ConsoleMe served them."""

from django.urls import URLPattern, URLResolver, path

from brokering import weep

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "api/v1/get_credentials", weep.CliCredentialIssueApi.as_view(), name="weep_get_credentials"
    ),
    path("api/v1/get_roles", weep.CliRoleListApi.as_view(), name="weep_get_roles"),
    path("api/v2/get_roles", weep.CliRoleDetailListApi.as_view(), name="weep_get_roles_v2"),
    path(
        "api/v2/get_resource_url", weep.CliResourceUrlGetApi.as_view(), name="weep_get_resource_url"
    ),
    path("api/v1/policies/typeahead", weep.CliTypeaheadSearchApi.as_view(), name="weep_typeahead"),
    path(
        "noauth/v1/challenge_generator/<str:user>",
        weep.CliChallengeCreateApi.as_view(),
        name="cli_challenge_create",
    ),
    path(
        "noauth/v1/challenge_poller/<str:token>",
        weep.CliChallengePollApi.as_view(),
        name="cli_challenge_poll",
    ),
    path(
        "challenge_validator/<str:token>",
        weep.cli_challenge_validate,
        name="cli_challenge_validate",
    ),
]
