"""Terraform schemas derived from the spec models, so names, defaults and descriptions have one home.

A spec field becomes an attribute of the same name: `str`/`int`/`float`/
`bool`/`Literal` a primitive, `list[str]` and `dict[str, str]` a list or map
of strings, a nested spec a nested attribute (`sharing = { strategy = "mps" }`),
`list[Spec]` and `dict[str, Spec]` lists and maps of nested objects. Fields
without a default are required. Top-level scalars with a default are also
computed, so the plan shows the value the spec resolves (`namespace = "inference"`)
and other resources can reference it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

from infra_inference.specs.base import Spec

Nesting = Literal["single", "list", "map"]
# cty type JSON, as the plugin protocol carries it: "string", ["list", "string"], ...
CtyType = str | list[Any]


@dataclass(frozen=True)
class Attr:
    """One attribute; either `type` (primitive or collection) or `nested` (an object, list or map of objects)."""

    name: str
    description: str
    type: CtyType | None = None
    nested: Nested | None = None
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    default: Any = None

    @property
    def type_label(self) -> str:
        """How the docs name the type: `string`, `list(string)`, `object`, `map(object)`."""
        if self.nested is not None:
            return {"single": "object", "list": "list(object)", "map": "map(object)"}[self.nested.nesting]
        return _type_label(self.type)


@dataclass(frozen=True)
class Nested:
    nesting: Nesting
    attributes: tuple[Attr, ...]


@dataclass(frozen=True)
class Schema:
    """A resource, data source or provider configuration schema."""

    description: str
    attributes: tuple[Attr, ...]
    version: int = 0

    def attribute(self, name: str) -> Attr:
        return next(a for a in self.attributes if a.name == name)


def _type_label(t: CtyType | None) -> str:
    if isinstance(t, list):
        return f"{t[0]}({_type_label(t[1])})"
    return str(t)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without `| None` and `Annotated`, whether None was allowed)."""
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            nullable = nullable or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                raise TypeError(f"unions have no Terraform type: {annotation}")
            annotation = args[0]
        else:
            return annotation, nullable


def _primitive(annotation: Any) -> CtyType:
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    if annotation is str or typing.get_origin(annotation) is Literal:
        return "string"
    raise TypeError(f"no Terraform type for {annotation}")


def _is_spec(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Spec)


def _description(info: FieldInfo, annotation: Any, default: Any) -> str:
    text = (info.description or "").strip()
    if typing.get_origin(annotation) is Literal:
        choices = ", ".join(f'"{c}"' for c in typing.get_args(annotation))
        if choices not in text:
            text += f" One of {choices}."
    if default not in (None, [], {}):
        text += f" Default: {_hcl(default)}."
    return text.strip()


def _hcl(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    return str(value)


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.is_required() else info.default


def spec_attributes(model: type[Spec], *, top: bool = True, skip: tuple[str, ...] = ()) -> tuple[Attr, ...]:
    """One attribute per field of `model`, in declaration order."""
    out: list[Attr] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation, _ = _unwrap(info.annotation)
        default = _default(info)
        desc = _description(info, annotation, default if not _is_spec(annotation) else None)
        required = info.is_required()
        scalar = not isinstance(default, (list, dict)) and not _is_spec(annotation) \
            and typing.get_origin(annotation) not in (list, dict)
        computed = top and not required and scalar and default is not None
        kwargs: dict[str, Any] = {"required": required, "optional": not required, "computed": computed,
                                  "default": default}
        origin = typing.get_origin(annotation)
        if _is_spec(annotation):
            out.append(Attr(name, desc, nested=Nested("single", spec_attributes(annotation, top=False)), **kwargs))
        elif origin in (list, dict):
            item, _ = _unwrap(typing.get_args(annotation)[-1])
            nesting: Nesting = "list" if origin is list else "map"
            if _is_spec(item):
                out.append(Attr(name, desc, nested=Nested(nesting, spec_attributes(item, top=False)), **kwargs))
            else:
                out.append(Attr(name, desc, type=[nesting, _primitive(item)], **kwargs))
        else:
            out.append(Attr(name, desc, type=_primitive(annotation), **kwargs))
    return tuple(out)


def output(name: str, description: str, type: CtyType | None = None, nested: Nested | None = None) -> Attr:
    return Attr(name, description, type=type, nested=nested, computed=True)


def object_of(**fields: str) -> Nested:
    """A computed object whose fields are all strings (descriptions as values)."""
    return Nested("single", tuple(Attr(k, v, type="string", computed=True) for k, v in fields.items()))
