"""The Learner: content-addressed dataset versions, YOLO training on Ray, evaluation on frozen
standard test sets, the release gate, ONNX export and the model registry. Plain Python: the Dagster
side lives in assets/learner.py, jobs/learner.py and resources/ray.py."""
