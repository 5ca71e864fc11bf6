"""The Learner: content-addressed dataset versions, YOLO training on Ray, evaluation on frozen
standard test sets, the release gate, ONNX export and the model registry. Plain Python: the Dagster
side lives in assets/learner.py, jobs/learner.py and resources/ray.py.

For the release stage (everything takes a `Lake`):

    from flywheel.learner import gate, registry
    decision = gate.recheck_gate(lake, model_id)        # re-decide from the registry: re-runs the
    if decision.passed:                                 # ONNX golden check, refuses a stale baseline
        registry.set_production(lake, model_id, by="release", reason="canary healthy")
    registry.bootstrap_production(lake, model_id)       # first model, only when none exists
    registry.read_card(lake, model_id)                  # ModelCardV1: classes, preprocessing, files +
                                                        # sha256, lineage (documents.py)
    models/<model_id>/model.onnx + device.json          # what a device slot needs (model.onnx +
                                                        # model.json = DeviceModelV1, read_device_model;
                                                        # + detector.onnx when it names one)
    registry.write_slot(lake, model_id, dir)            # those files as a device slot
    A release names its model by the ModelRef the Learner hands over (flywheel/refs.py): take
    `candidate_model` as an asset input, never a "latest" pointer.
"""
