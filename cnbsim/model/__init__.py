"""Typed models of every CNB file cnbsim reads or writes: parsed and validated at the edge."""

from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import BuildpackDescriptor, escape_id, read_buildpack_toml
from cnbsim.model.launch import BuildToml, Label, LaunchToml, Process, Slice, StoreToml
from cnbsim.model.layer import LayerMetadata, LayerTypes
from cnbsim.model.metadata import BuildMetadata, read_metadata_toml
from cnbsim.model.order import GroupElement, OrderGroup
from cnbsim.model.plan import BuildpackPlan, DetectPlan, Plan, PlanEntry, Provide, Provider, Require

__all__ = [
    "ApiVersion",
    "BuildMetadata",
    "BuildToml",
    "BuildpackDescriptor",
    "BuildpackPlan",
    "DetectPlan",
    "GroupElement",
    "Label",
    "LaunchToml",
    "LayerMetadata",
    "LayerTypes",
    "OrderGroup",
    "Plan",
    "PlanEntry",
    "Process",
    "Provide",
    "Provider",
    "Require",
    "Slice",
    "StoreToml",
    "escape_id",
    "read_buildpack_toml",
    "read_metadata_toml",
]
