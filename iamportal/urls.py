from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from iamportal import apis, oidc, views

handler404 = "iamportal.views.page_not_found"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/failed/", oidc.login_failed, name="login_failed"),
    path("logout/", oidc.LogoutView.as_view(), name="logout"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("profile/", views.profile, name="profile"),
    path("profile/tokens/", views.api_token_create, name="api_token_create"),
    path("profile/tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("api/v1/me", apis.MeApi.as_view(), name="api_me"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # Interactive documentation; its initializer is served as a file (?script), as the
    # Content-Security-Policy allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api_schema", template_name="iamportal/api_docs.html"
        ),
        name="api_docs",
    ),
    path("admin/", admin.site.urls),
    path("", include("iamportal.ops_urls")),
    path("", include("brokering.weep_urls")),
    path("", include("brokering.api_urls")),
    path("", include("brokering.urls")),
    path("", include("requests_app.api_urls")),
    path("", include("requests_app.urls")),
    path("", include("accounts.urls")),
    path("", include("accounts.usage.urls")),
]
