"""Django's PostgreSQL backend, with its per-request connection health check
spaced out (see base.DatabaseWrapper)."""
