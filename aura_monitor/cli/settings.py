"""Command-line flags generated from the Settings fields, so flags, variables and docs never drift."""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path
from typing import Any

from ..config import ENV_PREFIX, Settings, load_settings


def _parse_mapping(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected JSON like '{{\"tts\": 90}}', got {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_settings_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One --flag per Settings field (or those in `only`), each naming its AURA_MONITOR_* variable."""
    group = parser.add_argument_group("settings (flag > environment > config file > default)")
    for name, info in Settings.model_fields.items():
        if only is not None and name not in only:
            continue
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, {}, "") else f"; default {default}"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": f"{info.description} [{env}{shown}]"}
        annotation = info.annotation
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Literal:
            kwargs["choices"] = list(args)
        elif annotation is int:
            kwargs["type"] = int
        elif annotation is float:
            kwargs["type"] = float
        elif origin is dict:
            kwargs["type"] = _parse_mapping
        elif origin is list:
            kwargs["action"] = "append"  # repeatable: --flag a --flag b
        elif annotation is Path or Path in args:
            kwargs["type"] = Path
            kwargs["metavar"] = "PATH"
        group.add_argument(flag, **kwargs)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return load_settings(**flags)
