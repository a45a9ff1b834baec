"""What FastAPI works out about a parameter, worked out once per parameter instead of per request.

For every query, header, cookie and path parameter of every request, FastAPI 0.165
(`fastapi.dependencies.utils.request_params_to_args`) asks again whether the parameter is a
model, what its aliases are, whether it is JSON and whether its annotation is a sequence: facts
fixed when the route is declared, found by walking the annotation (`get_origin`,
`lenient_issubclass`), about a quarter of the CPU of a list route with a dozen parameters
(bench/ANALYSIS.md, ninth round). `install()` replaces those four helpers in that module with
ones that remember their answer per parameter (per annotation for the sequence test).

Only pure functions of a parameter's declaration are remembered, and the declarations never
change after start-up. `tests/kit/test_param_facts.py` compares every remembered answer with
FastAPI's own for every parameter of the application, and fails if FastAPI renames a helper.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

import fastapi.dependencies.utils as fastapi_utils

# The helpers `request_params_to_args` and `_get_multidict_value` look up in their module.
PER_FIELD: Final = ("_get_param_model", "_is_json_field")
ORIGINALS: Final[dict[str, Callable[..., Any]]] = {
    name: getattr(fastapi_utils, name)
    for name in (*PER_FIELD, "_get_param_aliases", "field_annotation_is_sequence")
}


def _remembered(field: Any, key: str, work_out: Callable[[], Any]) -> Any:
    # On the field itself (a ModelField is a plain dataclass: no slots, not hashable), with the
    # declaration it was worked out from: a copy given another `field_info` asks again.
    facts = field.__dict__
    known = facts.get(key)
    if known is not None and known[0] is field.field_info:
        return known[1]
    answer = work_out()
    facts[key] = (field.field_info, answer)
    return answer


def _per_field(name: str) -> Callable[[Any], Any]:
    original, key = ORIGINALS[name], f"_apps_api_{name}"
    return lambda field: _remembered(field, key, lambda: original(field))


def _param_aliases(field: Any, *, convert_underscores: bool = False) -> Any:
    key = "_apps_api_aliases_converted" if convert_underscores else "_apps_api_aliases"
    original = ORIGINALS["_get_param_aliases"]
    return _remembered(field, key, lambda: original(field, convert_underscores=convert_underscores))


_sequence_cached = functools.lru_cache(maxsize=1024)(ORIGINALS["field_annotation_is_sequence"])


def _annotation_is_sequence(annotation: Any) -> bool:
    try:
        return bool(_sequence_cached(annotation))
    except TypeError:  # an unhashable annotation (metadata that cannot be hashed): ask each time
        return bool(ORIGINALS["field_annotation_is_sequence"](annotation))


def install() -> None:
    """Put the remembering helpers in FastAPI's module (again and again: the originals stay)."""
    for name in PER_FIELD:
        setattr(fastapi_utils, name, _per_field(name))
    fastapi_utils._get_param_aliases = _param_aliases
    # Imported there from fastapi._compat; the module's own name is what its callers look up.
    setattr(fastapi_utils, "field_annotation_is_sequence", _annotation_is_sequence)  # noqa: B010
