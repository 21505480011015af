"""Click options made from a dataclass's fields (``models/training/config.py``): one definition of
a command's settings. A field's option is ``--`` plus its name with dashes (or its metadata's
``option``); its type follows the annotation (``X | None``: X, default None; ``bool``: an on/off
pair; ``list[str]``: repeatable); help, choices, metavar and paths come from the metadata. A field
whose type is a dataclass gives one option per field of its own, prefixed (``lora.r``:
``--lora-r``)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

import click


def _options(config_type: type, prefix: str = "") -> list[tuple[str, click.Option]]:
    hints = typing.get_type_hints(config_type)
    out = []
    for f in dataclasses.fields(config_type):
        kind, meta = hints[f.name], dict(f.metadata)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            out += _options(kind, f"{name}_")
            continue
        args = typing.get_args(kind)
        many = kind == list[str] or list[str] in args
        base = next((a for a in args if a is not type(None) and a != list[str]), kind) if args else kind
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        long = meta.get("option") or "--" + name.replace("_", "-")
        decls = [f"{long}/--no-{long[2:]}" if base is bool else long, *([meta["short"]] if "short" in meta else []), name]
        kwargs: dict = {"help": meta.get("help") or None, "show_default": default not in (None, [], ""),
                        "metavar": meta.get("metavar"), "required": meta.get("required", False)}
        if "choices" in meta:
            kwargs["type"] = click.Choice(list(meta["choices"]))
        elif "path" in meta:
            kwargs["type"] = click.Path(file_okay=meta["path"] == "file", dir_okay=meta["path"] == "dir",
                                        exists=meta.get("exists", False))
        elif base in (int, float):
            kwargs["type"] = base
        if many:
            kwargs.update(multiple=True, default=tuple(default or ()), show_default=False)
        else:
            kwargs["default"] = default
        out.append((name, click.Option(decls, **kwargs)))
    return out


def config_options(config_type: type) -> Callable:
    """A decorator adding the options of ``config_type``'s fields to a click command."""
    def decorate(command: Callable) -> Callable:
        # click lists a command's options in the reverse of __click_params__ (decorators run bottom up)
        command.__click_params__ = [*getattr(command, "__click_params__", []),
                                    *reversed([option for _, option in _options(config_type)])]
        return command
    return decorate


def config_of(config_type: type, values: dict, prefix: str = ""):
    """The ``config_type`` instance of the parsed option ``values`` (repeatable options as lists;
    a nested dataclass rebuilt from its prefixed options). Options left out (None) of required
    fields must be filled by the caller first."""
    hints = typing.get_type_hints(config_type)
    kwargs = {}
    for f in dataclasses.fields(config_type):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = config_of(hints[f.name], values, f"{name}_")
        elif name in values:
            value = values[name]
            kwargs[f.name] = list(value) if isinstance(value, tuple) else value
    return config_type(**kwargs)
