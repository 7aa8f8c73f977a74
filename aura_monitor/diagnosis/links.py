"""A job's absolute URLs on this sidecar, built from --external-url (DESIGN 2.8), never from the scrape address."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

LINK_NAMES = ("job", "explain", "events", "retry", "cancel", "board")


@dataclass(frozen=True, slots=True)
class JobLinks:
    """Where a person or a script reaches one job: `base` is the sidecar's resolved external URL."""

    base: str
    job_id: str
    token_required: bool = False  # retry and cancel need `Authorization: Bearer <--token>`

    @property
    def _api(self) -> str:
        return f"{self.base.rstrip('/')}/api/jobs/{quote(self.job_id, safe='')}"

    def url(self, name: str) -> str:
        """One of LINK_NAMES as an absolute URL; the board one opens the board with this job's panel."""
        if name == "board":
            return f"{self.base.rstrip('/')}/#job={quote(self.job_id, safe='')}"
        if name == "job":
            return self._api
        if name not in LINK_NAMES:
            raise ValueError(f"no link named {name!r}; known: {', '.join(LINK_NAMES)}")
        return f"{self._api}/{name}"

    def post(self, action: str) -> str:
        """`POST <absolute url>` for a remediation step, naming the token header when one is needed (not the token)."""
        step = f"POST {self.url(action)}"
        if self.token_required:
            step += " (with header Authorization: Bearer <the sidecar's --token>)"
        return step

    def as_dict(self) -> dict[str, str]:
        return {name: self.url(name) for name in LINK_NAMES}
