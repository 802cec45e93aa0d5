"""`defaults_of`: a function's keyword defaults, for a schema that configures the function.

A config schema (`vat.config.DataConfig`, the probes' scoring settings) whose fields are the
arguments of one function takes that function's defaults from its signature, so each value is
written once: in the signature.
"""

from __future__ import annotations

import inspect
from typing import Any


def defaults_of(fn: Any) -> dict[str, Any]:
    """``{parameter: default}`` of `fn`'s parameters that have one (a class: its ``__init__``)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
