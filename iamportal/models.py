from django.db import models


class JobStatus(models.Model):
    """Last success and failure of each background job, for /metrics and /status."""

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "job statuses"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
