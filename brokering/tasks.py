"""django-q2 entry points for brokering."""

from brokering import services
from iamportal import jobs


@jobs.tracked("brokering.cli_challenges_prune")
def cli_challenges_prune_task() -> int:
    return services.cli_challenges_prune()


@jobs.tracked("brokering.session_revocation_apply")
def session_revocation_apply_task(revocation_id: int) -> str:
    return services.session_revocation_apply(revocation_id=revocation_id)


@jobs.tracked("brokering.session_revocations_sweep")
def session_revocations_sweep_task() -> dict[str, int]:
    """Every minute: hand revocations whose task was lost to the broker again, and
    lift the denies whose sessions have all expired."""
    return services.session_revocations_sweep()
