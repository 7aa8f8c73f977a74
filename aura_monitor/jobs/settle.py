"""Verdict hysteresis: a stalled job's verdict changes only when new evidence contradicts it.

Every diagnosis of a stalled job proposes a verdict with a strength (diagnosis/findings.py: how directly
it was observed, then its severity). The held verdict changes at once when the proposal refines the
stall's generic placeholder or is stronger than what is held; any other change must be proposed by
CONFIRMATIONS diagnoses in a row spanning at least CONFIRM_S seconds. One diagnosis that happens to
miss the evidence (a retry loop caught between two attempts) then cannot flip what the pager and the
board show, and a real change still shows within two diagnoses.
"""

from __future__ import annotations

from dataclasses import dataclass

from .verdicts import Verdict

CONFIRMATIONS = 2
CONFIRM_S = 5.0
# The stall's placeholder: any specific cause refines it at once.
GENERIC = frozenset({Verdict.NO_PROGRESS})


@dataclass(slots=True)
class VerdictHold:
    """The held verdict of one stall and the challenger waiting to be confirmed."""

    held: Verdict | None = None
    strength: int = 0
    diagnosed: bool = False  # False while `held` is the stall's placeholder
    challenger: Verdict | None = None
    challenges: int = 0
    challenged_at: float | None = None

    def start(self, placeholder: Verdict) -> None:
        """A new stall: hold its placeholder until a diagnosis refines it."""
        self.held, self.strength, self.diagnosed = placeholder, 0, False
        self._drop_challenger()

    def propose(self, verdict: Verdict, strength: int, at: float) -> bool:
        """Take a diagnosis's verdict into account; True when the held verdict changes to it."""
        if verdict == self.held:
            self.strength, self.diagnosed = strength, True  # confirmed: its strength is today's
            self._drop_challenger()
            return False
        if not self.diagnosed or self.held in GENERIC or self.held is None or strength > self.strength:
            return self._take(verdict, strength)
        if verdict != self.challenger:
            self.challenger, self.challenges, self.challenged_at = verdict, 1, at
        else:
            self.challenges += 1
        first = self.challenged_at if self.challenged_at is not None else at
        if self.challenges >= CONFIRMATIONS and at - first >= CONFIRM_S:
            return self._take(verdict, strength)
        return False

    def _take(self, verdict: Verdict, strength: int) -> bool:
        self.held, self.strength, self.diagnosed = verdict, strength, True
        self._drop_challenger()
        return True

    def _drop_challenger(self) -> None:
        self.challenger, self.challenges, self.challenged_at = None, 0, None
