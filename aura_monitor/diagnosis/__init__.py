"""Explaining a job: evidence collectors, then rules that turn evidence into findings."""

from ..jobs.verdicts import Severity, Verdict
from .explain import Diagnosis, explain_offline, run_diagnosis
from .findings import Finding
from .subject import Subject

__all__ = ["Diagnosis", "Finding", "Severity", "Subject", "Verdict", "explain_offline", "run_diagnosis"]
