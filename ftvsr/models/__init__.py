"""The FTVSR network, its parts, and loading / saving its weights."""

from ftvsr.models.checkpoint import (
    load_model,
    load_model_weights,
    load_official_weights,
    load_released,
    load_spynet_weights,
    read_metadata,
    save_model,
)
from ftvsr.models.classical_flow import ClassicalFlow
from ftvsr.models.ftt import FTT, FrequencyAttention
from ftvsr.models.ftvsr import FTVSR
from ftvsr.models.ltam import LTAM, KeyframeBuffers
from ftvsr.models.spynet import SPyNet, flow_warp

__all__ = [
    "FTT",
    "FTVSR",
    "LTAM",
    "ClassicalFlow",
    "FrequencyAttention",
    "KeyframeBuffers",
    "SPyNet",
    "flow_warp",
    "load_model",
    "load_model_weights",
    "load_official_weights",
    "load_released",
    "load_spynet_weights",
    "read_metadata",
    "save_model",
]
