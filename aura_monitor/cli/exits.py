"""Exit codes shared by every command (DESIGN 2.1), and the help text that documents them."""

from __future__ import annotations

from ..exceptions import AuraMonitorError, ConfigError, InvalidJobId, InvalidQuery

OK = 0
# The thing asked for does not exist, could not be reached, or a check failed (a job failed, a verdict
# was not the expected one): a script can retry later or alert, but its command line was right.
FAILED = 1
# The command line itself is wrong (argparse uses 2 as well): retrying the same command cannot help.
USAGE = 2
# 128 + the signal number, as a shell reports a process stopped by a signal; used after a clean stop.
INTERRUPTED_BASE = 128


class UsageError(AuraMonitorError):
    """A flag value the command or the sidecar refuses (e.g. an unknown status filter)."""


_USAGE_ERRORS = (ConfigError, InvalidJobId, InvalidQuery, UsageError)


def code_for(exc: AuraMonitorError) -> int:
    """USAGE for what the operator typed wrong, FAILED for everything else the command could not do."""
    return USAGE if isinstance(exc, _USAGE_ERRORS) else FAILED


DEFAULT_OUTCOMES = (
    "0    success",
    "1    what was asked for does not exist, the sidecar could not be reached, or a check failed",
)
CLIENT_STOP = "130  interrupted by Ctrl-C; 143 by SIGTERM (handled the same way)"
DAEMON_STOP = "Ctrl-C or SIGTERM stops it cleanly (every child process stopped first) and exits 0"


USAGE_LINE = "2    usage error: a bad flag or value (retrying the same command cannot help)"


def epilog(outcomes: tuple[str, ...] = DEFAULT_OUTCOMES, stop: str = CLIENT_STOP, usage: str = USAGE_LINE) -> str:
    """The "exit codes" paragraph of a command's --help (shown verbatim: RawDescriptionHelpFormatter)."""
    lines = [*sorted([*outcomes, usage], key=lambda line: int(line.split()[0])), stop]
    return "exit codes:\n" + "\n".join(f"  {line}" for line in lines)
