"""Terraform plugin protocol v6 over the `tf` package's generated stubs: the RPCs, in our own servicer.

`tf` ships the tfplugin6 protobuf stubs; its resource layer has no nested
attributes and cannot plan computed values at create, which references need
(a service plans against its pool's `ref` before the pool exists), so the
servicer is ours. Every RPC turns Terraform values into plain dicts, calls
`resources.py`, and turns a SpecError into one diagnostic per problem, pointed
at the attribute its path names.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import grpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown
from tf.utils import read_dynamic_value, to_dynamic_value

from infra_inference.errors import SpecError
from infra_inference.terraform.cluster import Cluster, ClusterError, Connection, apply_order, delete_order, key
from infra_inference.terraform.resources import DATA_SOURCES, PROVIDER, RESOURCES, Planned, ResourceKind, without_nulls
from infra_inference.terraform.schema import Attr, Schema

CHANGED = "changed outside Terraform"
_NESTING = {"single": pb.Schema.Object.SINGLE, "list": pb.Schema.Object.LIST, "map": pb.Schema.Object.MAP}


# --- schemas -----------------------------------------------------------------------------------

def _attr_pb(a: Attr) -> pb.Schema.Attribute:
    out = pb.Schema.Attribute(name=a.name, description=a.description, description_kind=pb.PLAIN,
                              required=a.required, optional=a.optional, computed=a.computed, sensitive=a.sensitive)
    if a.nested is not None:
        out.nested_type.CopyFrom(pb.Schema.Object(attributes=[_attr_pb(n) for n in a.nested.attributes],
                                                  nesting=_NESTING[a.nested.nesting]))
    else:
        out.type = json.dumps(a.type).encode()
    return out


def schema_pb(s: Schema) -> pb.Schema:
    return pb.Schema(version=s.version, block=pb.Schema.Block(
        attributes=[_attr_pb(a) for a in s.attributes], description=s.description, description_kind=pb.PLAIN))


# --- values ------------------------------------------------------------------------------------

def has_unknown(value: Any) -> bool:
    if value is Unknown:
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def arguments(schema: Schema, values: dict[str, Any]) -> dict[str, Any]:
    """The values of the attributes a user sets (required or optional), as given."""
    return {a.name: values.get(a.name) for a in schema.attributes if a.required or a.optional}


def state_of(schema: Schema, config: dict[str, Any], planned: Planned | None) -> dict[str, Any]:
    """Every attribute: arguments as configured, a computed one from the plan (Unknown when not plannable)."""
    out: dict[str, Any] = {}
    for a in schema.attributes:
        given = config.get(a.name)
        if given is not None or not a.computed:
            out[a.name] = given
        elif planned is None:
            out[a.name] = Unknown
        elif a.name == "id":
            out[a.name] = planned.id
        elif a.name == "objects":
            out[a.name] = planned.object_digests
        else:
            out[a.name] = planned.values.get(a.name)
    return out


def _decode(value: pb.DynamicValue) -> Any:
    return read_dynamic_value(value)


# --- diagnostics -------------------------------------------------------------------------------

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def attribute_path(schema: Schema, path: str) -> pb.AttributePath | None:
    """`sharing.replicas_per_gpu`, `tenants[0].name`, `variants.a.model.format` as protocol steps.

    Walks the schema so a map key becomes an element key, not an attribute; stops at the deepest
    step the schema knows (a problem on `autoscale` still points at the block the user wrote).
    """
    steps: list[pb.AttributePath.Step] = []
    attrs: tuple[Attr, ...] | None = schema.attributes
    element: str | None = None  # "list" or "map" when the next token indexes a collection
    after: tuple[Attr, ...] | None = None
    for name, index in _TOKEN.findall(path):
        if element is not None:
            if element == "list" and index:
                steps.append(pb.AttributePath.Step(element_key_int=int(index)))
            elif element == "map" and name:
                steps.append(pb.AttributePath.Step(element_key_string=name))
            else:
                break
            element, attrs = None, after
            continue
        match = next((a for a in attrs or () if a.name == name), None)
        if match is None:
            break
        steps.append(pb.AttributePath.Step(attribute_name=name))
        nesting = match.nested.nesting if match.nested else (match.type[0] if isinstance(match.type, list) else None)
        after = match.nested.attributes if match.nested else None
        if nesting in ("list", "map"):
            element = nesting
        else:
            attrs = after
    return pb.AttributePath(steps=steps) if steps else None


def spec_diagnostics(schema: Schema, err: SpecError) -> list[pb.Diagnostic]:
    """One error per problem, worded as the SpecError words it, pointed at its attribute."""
    out = []
    for p in err.problems:
        d = pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=str(p), detail=p.message)
        where = attribute_path(schema, p.path)
        if where is not None:
            d.attribute.CopyFrom(where)
        out.append(d)
    return out


def error(summary: str, detail: str = "") -> list[pb.Diagnostic]:
    return [pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)]


# --- the servicer ------------------------------------------------------------------------------

class Provider(rpc.ProviderServicer):
    """One instance per provider process; Terraform calls RPCs from several threads at once."""

    def __init__(self) -> None:
        self._connection = Connection()
        self._cluster: Cluster | None = None
        self._lock = threading.Lock()

    def cluster(self) -> Cluster:
        with self._lock:
            if self._cluster is None:
                self._cluster = self._connection.client()
            return self._cluster

    # Provider

    def GetMetadata(self, request: Any, context: Any) -> Any:
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=t) for t in RESOURCES],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=t) for t in DATA_SOURCES])

    def GetProviderSchema(self, request: Any, context: Any) -> Any:
        return pb.GetProviderSchema.Response(
            provider=schema_pb(PROVIDER),
            provider_meta=pb.Schema(block=pb.Schema.Block()),
            resource_schemas={t: schema_pb(k.schema) for t, k in RESOURCES.items()},
            data_source_schemas={t: schema_pb(s) for t, (s, _) in DATA_SOURCES.items()},
            server_capabilities=pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True))

    def ValidateProviderConfig(self, request: Any, context: Any) -> Any:
        return pb.ValidateProviderConfig.Response()

    def ConfigureProvider(self, request: Any, context: Any) -> Any:
        config = _decode(request.config) or {}
        if has_unknown(config):
            return pb.ConfigureProvider.Response(diagnostics=error(
                "provider settings are not known yet", "kubeconfig, kubeconfig_path and context must be known "
                "at plan time; take them from variables or files, not from resources created in the same run"))
        self._connection = Connection.from_config(config)
        return pb.ConfigureProvider.Response()

    def StopProvider(self, request: Any, context: Any) -> Any:
        return pb.StopProvider.Response()

    def GetFunctions(self, request: Any, context: Any) -> Any:
        return pb.GetFunctions.Response()

    # Resources

    def ValidateResourceConfig(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        args = without_nulls(arguments(kind.schema, _decode(request.config) or {}))
        unknown = {k for k, v in args.items() if has_unknown(v)}
        try:
            if unknown:  # references from other resources: the plan checks the rest once they are known
                kind.check_spec({k: v for k, v in args.items() if k not in unknown}, unknown)
            else:
                kind.plan(args)
        except SpecError as err:
            return pb.ValidateResourceConfig.Response(diagnostics=spec_diagnostics(kind.schema, err))
        return pb.ValidateResourceConfig.Response()

    def UpgradeResourceState(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        state = json.loads(request.raw_state.json)
        state = {a.name: state.get(a.name) for a in kind.schema.attributes}
        return pb.UpgradeResourceState.Response(upgraded_state=to_dynamic_value(state))

    def PlanResourceChange(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        proposed = _decode(request.proposed_new_state)
        if proposed is None:  # destroy
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
        config = _decode(request.config) or {}
        args = arguments(kind.schema, config)
        if has_unknown(args):
            return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(state_of(kind.schema, config, None)))
        try:
            planned = kind.plan(without_nulls(args))
        except SpecError as err:
            return pb.PlanResourceChange.Response(diagnostics=spec_diagnostics(kind.schema, err))
        return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(state_of(kind.schema, config, planned)))

    def ApplyResourceChange(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        prior = _decode(request.prior_state)
        if _decode(request.planned_state) is None:
            return self._destroy(kind, prior)
        config = _decode(request.config) or {}
        try:
            planned = kind.plan(without_nulls(arguments(kind.schema, config)))
        except SpecError as err:
            return pb.ApplyResourceChange.Response(diagnostics=spec_diagnostics(kind.schema, err))
        state = state_of(kind.schema, config, planned)
        applied: dict[str, str] = dict((prior or {}).get("objects") or {})
        try:
            cluster = self.cluster()
            wanted = planned.object_digests
            for o in apply_order(planned.objects):
                cluster.apply(o)
                applied[key(o)] = wanted[key(o)]
            for k in delete_order([k for k in applied if k not in wanted]):
                cluster.delete(k)
                del applied[k]
        except (ClusterError, OSError) as e:
            # Keep what exists in state: a re-run finishes the apply, a destroy removes it.
            state["objects"] = applied
            return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(state), diagnostics=error(
                f"applying {kind.type_name} {planned.id} failed", str(e)))
        return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(state))

    def _destroy(self, kind: ResourceKind, prior: dict[str, Any]) -> Any:
        keys = set(prior.get("objects") or {})
        try:  # also what the arguments render, in case an interrupted apply never recorded it
            keys |= {key(o) for o in kind.plan(without_nulls(arguments(kind.schema, prior))).objects}
        except SpecError:
            pass
        remaining = dict.fromkeys(keys, "")
        try:
            cluster = self.cluster()
            for k in delete_order(sorted(keys)):
                cluster.delete(k)
                del remaining[k]
        except (ClusterError, OSError) as e:
            return pb.ApplyResourceChange.Response(
                new_state=to_dynamic_value({**prior, "objects": {k: (prior.get("objects") or {}).get(k, "")
                                                                 for k in remaining}}),
                diagnostics=error(f"deleting {kind.type_name} {prior.get('id')} failed", str(e)))
        return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(None))

    def ReadResource(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        state = _decode(request.current_state)
        recorded: dict[str, str] = state.get("objects") or {}
        try:
            rendered = {key(o): o for o in kind.plan(without_nulls(arguments(kind.schema, state))).objects}
        except SpecError:
            rendered = {}  # imported by id, arguments not yet set: nothing to compare against
        current: dict[str, str] = {}
        try:
            cluster = self.cluster()
            for k, d in recorded.items():
                if k not in rendered:
                    if cluster.get(k) is not None:
                        current[k] = d
                    continue
                drift = cluster.drift(rendered[k])
                if drift is None:
                    current[k] = d
                elif drift == "changed":
                    current[k] = CHANGED
        except (ClusterError, OSError) as e:
            return pb.ReadResource.Response(new_state=request.current_state, diagnostics=error(
                f"reading {kind.type_name} {state.get('id')} failed", str(e)))
        return pb.ReadResource.Response(new_state=to_dynamic_value({**state, "objects": current}))

    def ImportResourceState(self, request: Any, context: Any) -> Any:
        kind = RESOURCES[request.type_name]
        state: dict[str, Any] = {a.name: None for a in kind.schema.attributes}
        state |= kind.import_args(request.id) | {"id": request.id, "objects": {}}
        return pb.ImportResourceState.Response(imported_resources=[pb.ImportResourceState.ImportedResource(
            type_name=request.type_name, state=to_dynamic_value(state))])

    def MoveResourceState(self, request: Any, context: Any) -> Any:
        return pb.MoveResourceState.Response(diagnostics=error("moving state between resource types is not "
                                                               "supported"))

    # Data sources

    def _settings(self, type_name: str, config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
        schema, read = DATA_SOURCES[type_name]
        args = arguments(schema, config)
        try:
            return {**config, **read(without_nulls(args))}, []
        except SpecError as err:
            return None, spec_diagnostics(schema, err)

    def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:
        config = _decode(request.config) or {}
        if has_unknown(config):
            return pb.ValidateDataResourceConfig.Response()
        _, diags = self._settings(request.type_name, config)
        return pb.ValidateDataResourceConfig.Response(diagnostics=diags)

    def ReadDataSource(self, request: Any, context: Any) -> Any:
        state, diags = self._settings(request.type_name, _decode(request.config) or {})
        if state is None:
            return pb.ReadDataSource.Response(diagnostics=diags)
        return pb.ReadDataSource.Response(state=to_dynamic_value(state))


def serve_grpc(server: grpc.Server) -> None:
    rpc.add_ProviderServicer_to_server(Provider(), server)
