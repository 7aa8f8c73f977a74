"""Explaining a job: evidence collectors, then rules that turn evidence into findings."""

from .explain import Diagnosis, explain_offline, run_diagnosis
from .findings import Code, Finding, Severity
from .subject import Subject

__all__ = ["Code", "Diagnosis", "Finding", "Severity", "Subject", "explain_offline", "run_diagnosis"]
