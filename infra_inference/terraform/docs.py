"""sdk-docs/terraform.md, generated from the provider's schema: every resource, attribute, default, description."""

from __future__ import annotations

from infra_inference.terraform.resources import DATA_SOURCES, PROVIDER, RESOURCES
from infra_inference.terraform.schema import Attr, Schema

HEADER = """# Terraform provider reference

Generated from the provider's schema by `infra-inference terraform docs`; a test fails when this file
and the schema drift apart. The guide is [terraform-guide.md](terraform-guide.md).

Each resource plans with the same functions as the Pulumi component of the same name and
`infra-inference render`, so the objects and the validation errors are the same. Arguments marked
*computed* show the value they resolve to in the plan when you leave them unset.
"""


def _role(a: Attr) -> str:
    if a.required:
        return "required"
    if a.optional and a.computed:
        return "optional, computed"
    return "optional" if a.optional else "output"


def _rows(attrs: tuple[Attr, ...], prefix: str = "") -> list[str]:
    out = []
    for a in attrs:
        desc = a.description.replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{prefix}{a.name}` | {a.type_label} | {_role(a)} | {desc} |")
        if a.nested is not None:
            inner = f"{prefix}{a.name}" + {"single": ".", "list": "[*].", "map": "[*]."}[a.nested.nesting]
            out += _rows(a.nested.attributes, inner)
    return out


def _section(title: str, schema: Schema) -> str:
    rows = "\n".join(_rows(schema.attributes))
    return (f"## {title}\n\n{schema.description}\n\n| attribute | type | | description |\n|---|---|---|---|\n"
            f"{rows}\n")


def markdown() -> str:
    parts = [HEADER, _section("Provider `infra-inference`", PROVIDER)]
    parts += [_section(f"Resource `{t}`", k.schema) for t, k in RESOURCES.items()]
    parts += [_section(f"Data source `{t}`", s) for t, (s, _) in DATA_SOURCES.items()]
    return "\n".join(parts)
