from django.urls import path

from iamportal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("status/", views.status, name="status"),
]
