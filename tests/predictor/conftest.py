"""Shared fixtures for the predictor tests: synthetic samples and one small trained model."""

from __future__ import annotations

import pytest

from predictor.boosting import BoostingParams
from predictor.models import ModelConfig
from predictor.samples import RequestSamples
from predictor.synthetic import synthetic_samples
from predictor.training import TrainingConfig, TrainingResult, train

#: Few, small trees: the suite must stay fast on two cores.
FAST_BOOSTING = BoostingParams(location_trees=30, mean_trees=30)
FAST_CONFIG = TrainingConfig(model=ModelConfig(boosting=FAST_BOOSTING))


@pytest.fixture(scope="session")
def fast_boosting() -> BoostingParams:
    return FAST_BOOSTING


@pytest.fixture(scope="session")
def samples() -> RequestSamples:
    return synthetic_samples(40_000, seed=11)


@pytest.fixture(scope="session")
def trained(samples: RequestSamples) -> TrainingResult:
    return train(samples, FAST_CONFIG, now=1_000.0)
