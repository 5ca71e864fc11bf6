"""One source for every default: the domain's dataclasses, pydantic models and functions define
them; the Dagster `Config` classes (assets/) and the CLIs read them from there with `default_of`
instead of repeating a number that then drifts (tests/test_config_defaults.py holds them equal)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any


def default_of(owner: Any, name: str) -> Any:
    """The default of `name` in a dataclass, a pydantic model, or a function's keyword argument."""
    if dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                raise ValueError(f"{owner.__name__}.{name} has no default")
        raise AttributeError(f"{owner.__name__} has no field {name!r}")
    fields = getattr(owner, "model_fields", None)
    if fields is not None:
        if name not in fields:
            raise AttributeError(f"{owner.__name__} has no field {name!r}")
        return fields[name].get_default(call_default_factory=True)
    param = inspect.signature(owner).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        raise AttributeError(f"{getattr(owner, '__name__', owner)} has no default for {name!r}")
    return param.default
