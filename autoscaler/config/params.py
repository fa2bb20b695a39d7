"""Validates a policy file's ``params`` into the policy's own params dataclass.

A policy (``autoscaler.core``, which imports no pydantic) declares its params as a frozen
dataclass, each field bounded with ``annotated_types`` metadata and documented by the string
right below it::

    @dataclass(frozen=True, slots=True, kw_only=True)
    class MyParams(PolicyParams):
        tolerance: Annotated[float, Ge(0), Lt(1)] = 0.1
        \"\"\"no change while |1 - usage/target| <= tolerance\"\"\"

Here, at the boundary, that dataclass becomes a frozen pydantic model of the same fields
(``params_model``) with the file format's rules: a ``float`` is a ``Number`` and an ``int`` a
``Whole`` (finite numbers, not bools or strings), nested dataclasses and tuples of them are
models too, unknown keys are rejected, the strings are the fields' descriptions. What it
validates is turned back into the dataclass (``validate_params``), so a policy receives
exactly the type it declared, and errors come out as the pydantic errors the loader already
reports with file, line, key path, value and rule.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, Field, StringConstraints, create_model

from autoscaler.config.models import FrozenModel, Number, Whole
from autoscaler.core.policy import Pattern

P = TypeVar("P")

_MODELS: dict[type[Any], type[BaseModel]] = {}
"""Each params dataclass -> its generated model (built once: a model is costly to build)."""
_SOURCE: dict[type[BaseModel], type[Any]] = {}
"""Each generated model -> the dataclass it stands for."""


def attribute_docs(cls: type[Any]) -> dict[str, str]:
    """``{field: the string literal right below its declaration}``, over the class and its
    dataclass bases (a subclass's own wins). Empty where the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body
        if not body or not isinstance(body[0], ast.ClassDef):
            continue
        statements = body[0].body
        for statement, following in itertools.pairwise(statements):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _model_type(annotation: Any) -> Any:
    """The pydantic-side type of a dataclass field's annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        # annotated_types' bounds are understood by pydantic as they are.
        kept = [
            StringConstraints(pattern=item.regex) if isinstance(item, Pattern) else item
            for item in metadata
        ]
        return Annotated[(_model_type(base), *kept)]
    if annotation is float:
        return Number
    if annotation is int:
        return Whole
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return params_model(annotation)
    if origin in (Union, types.UnionType):
        return Union[tuple(_model_type(arg) for arg in get_args(annotation))]  # noqa: UP007
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple[_model_type(args[0]), ...]  # type: ignore[misc]
        return tuple[tuple(_model_type(arg) for arg in args)]  # type: ignore[misc]
    if origin is Literal or annotation in (bool, str, type(None)):
        return annotation
    raise TypeError(f"params field type {annotation!r} is not supported")


def params_model(cls: type[Any]) -> type[BaseModel]:
    """The frozen pydantic model that validates ``cls``'s fields (a params dataclass)."""
    model = _MODELS.get(cls)
    if model is None:
        model = _MODELS[cls] = _build_model(cls)
        _SOURCE[model] = cls
    return model


def _build_model(cls: type[Any]) -> type[BaseModel]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a params dataclass")
    hints = get_type_hints(cls, include_extras=True)
    docs = attribute_docs(cls)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        info: dict[str, Any] = {"description": docs.get(item.name)}
        if item.default is not dataclasses.MISSING:
            info["default"] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            info["default_factory"] = item.default_factory
        fields[item.name] = (_model_type(hints[item.name]), Field(**info))
    model: type[BaseModel] = create_model(
        cls.__name__, __base__=FrozenModel, __doc__=cls.__doc__, **fields
    )
    return model


def _back(value: Any) -> Any:
    """A validated model's value as the dataclass side holds it."""
    if isinstance(value, BaseModel):
        source = _SOURCE[type(value)]
        return source(**{name: _back(getattr(value, name)) for name in type(value).model_fields})
    if isinstance(value, tuple):
        return tuple(_back(item) for item in value)
    return value


def validate_params(cls: type[P], data: Mapping[str, Any]) -> P:
    """``data`` validated into ``cls``; raises pydantic's ``ValidationError``."""
    validated: P = _back(params_model(cls).model_validate(dict(data)))
    return validated


def params_as_json(params: object) -> dict[str, Any]:
    """A params dataclass as plain JSON-ready values (tuples become lists)."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise TypeError(f"{params!r} is not a params dataclass instance")
    plain: dict[str, Any] = (
        params_model(type(params))
        .model_validate(dataclasses.asdict(params))
        .model_dump(mode="json")
    )
    return plain
