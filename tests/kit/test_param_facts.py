"""kit/param_facts.py: FastAPI's per-parameter facts, remembered, agree with FastAPI's own."""

from __future__ import annotations

from typing import Any

import fastapi.dependencies.utils as fastapi_utils
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from apps_api.kit import param_facts
from apps_api.main import create_app


def _parameters(dependant: Dependant) -> list[Any]:
    fields: list[Any] = []
    pending = [dependant]
    while pending:
        current = pending.pop()
        fields += [
            *current.path_params,
            *current.query_params,
            *current.header_params,
            *current.cookie_params,
        ]
        pending.extend(current.dependencies)
    return fields


def test_the_helpers_it_replaces_are_fastapis_and_are_replaced() -> None:
    """FastAPI renaming or dropping a helper fails here, not silently in production."""
    create_app()
    for name, original in param_facts.ORIGINALS.items():
        assert callable(original), name
        assert getattr(fastapi_utils, name) is not original, f"{name} is not replaced"


def test_every_parameter_of_the_app_gets_fastapis_own_answers_twice() -> None:
    app = create_app()
    fields = [
        field for route in app.routes if isinstance(route, APIRoute) for field in _parameters(route.dependant)
    ]
    assert len(fields) > 100  # the whole API's parameters, not an empty loop
    for field in fields:
        for _ in range(2):  # worked out, then remembered
            for name in param_facts.PER_FIELD:
                assert getattr(fastapi_utils, name)(field) == param_facts.ORIGINALS[name](field), (
                    name,
                    field,
                )
            for converted in (False, True):
                assert fastapi_utils._get_param_aliases(
                    field, convert_underscores=converted
                ) == param_facts.ORIGINALS["_get_param_aliases"](field, convert_underscores=converted)
            annotation = field.field_info.annotation
            is_sequence = param_facts.ORIGINALS["field_annotation_is_sequence"](annotation)
            assert fastapi_utils.field_annotation_is_sequence(annotation) == is_sequence


def test_the_sequence_test_remembered_answers_as_fastapi_and_takes_what_cannot_be_hashed() -> None:
    """No parameter of the API is a list, so the answers FastAPI gives list parameters (and an
    annotation whose metadata cannot be hashed) are asked here."""
    from typing import Annotated

    param_facts.install()
    unhashable = Annotated[list[str], {"a": "dict"}]
    for annotation in (list[str], tuple[int, ...], set[str], str, int | None, list[str] | None, unhashable):
        for _ in range(2):
            assert fastapi_utils.field_annotation_is_sequence(annotation) == param_facts.ORIGINALS[
                "field_annotation_is_sequence"
            ](annotation), annotation


def test_a_copy_with_another_declaration_asks_again() -> None:
    app = create_app()
    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.dependant.query_params)
    field = route.dependant.query_params[0]
    param_facts.install()
    fastapi_utils._get_param_aliases(field)
    other = next(
        f
        for r in app.routes
        if isinstance(r, APIRoute)
        for f in _parameters(r.dependant)
        if f.name != field.name
    )
    copy = type(field)(
        **{**{k: getattr(field, k) for k in ("name", "mode", "config")}, "field_info": other.field_info}
    )
    copy.__dict__.update({k: v for k, v in field.__dict__.items() if k.startswith("_apps_api")})
    assert fastapi_utils._get_param_aliases(copy) == param_facts.ORIGINALS["_get_param_aliases"](copy)
