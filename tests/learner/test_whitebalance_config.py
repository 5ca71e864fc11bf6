"""White balance is the classifier's default; detection trains on frames as they are."""

from __future__ import annotations


def test_classify_balances_by_default_and_detect_does_not():
    from assets.learner import TrainingConfig
    from flywheel.learner.config import TrainConfig
    from flywheel.learner.preprocess import preprocessing_doc

    assert TrainConfig().white_balance == "gray_world"
    assert TrainingConfig().train_config().white_balance == "gray_world"
    assert TrainConfig.for_task("detect").white_balance == "none"
    assert TrainingConfig(task="detect").train_config().white_balance == "none"
    assert preprocessing_doc(96, "classify", "gray_world")["white_balance"] == "gray_world"
    assert "white_balance" not in preprocessing_doc(96, "detect")
