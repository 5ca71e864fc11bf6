"""The Learner: content-addressed dataset versions, YOLO training on Ray, evaluation on frozen
standard test sets, the release gate, ONNX export and the model registry. Plain Python: the Dagster
side lives in assets/learner.py, jobs/learner.py and resources/ray.py.

For the release stage (everything takes a `Lake`):

    from flywheel.learner import gate, registry
    decision = gate.recheck_gate(lake, model_id)        # re-decide from the registry: re-runs the
    if decision.passed:                                 # ONNX golden check, refuses a stale baseline
        registry.set_production(lake, model_id, by="release", reason="canary healthy")
    registry.bootstrap_production(lake, model_id)       # first model, only when none exists
    registry.read_card(lake, model_id)                  # classes, preprocessing, files + sha256, lineage
    models/<model_id>/model.onnx + device.json          # what a device slot needs (model.onnx +
                                                        # model.json for edge_agent.model.DeviceModel)
"""
