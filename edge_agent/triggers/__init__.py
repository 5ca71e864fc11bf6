"""Trigger rules: a small declarative language over per-frame signals, versioned and hot-reloadable."""

from edge_agent.triggers.dsl import RuleError, parse_rule
from edge_agent.triggers.rules import (
    RuleSet,
    RuleSetWatcher,
    build_rule_set,
    compile_rule,
    load_rule_set,
    rule_set_from_mapping,
)
from edge_agent.triggers.signals import BarcodeReader, MotionDetector, SignalFrame, WeightTracker

__all__ = [
    "BarcodeReader",
    "MotionDetector",
    "RuleError",
    "RuleSet",
    "RuleSetWatcher",
    "SignalFrame",
    "WeightTracker",
    "build_rule_set",
    "compile_rule",
    "load_rule_set",
    "parse_rule",
    "rule_set_from_mapping",
]
