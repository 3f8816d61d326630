"""Jain's index on values whose index is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from endpoints.metrics.fairness import jain_index, jain_over_time


def test_known_values() -> None:
    assert jain_index([5, 5, 5, 5]) == pytest.approx(1.0)
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)  # 1/n: one flow takes all
    assert jain_index([1, 2, 3]) == pytest.approx(36 / 42)  # 6² / (3·14)
    assert jain_index([10e6, 30e6]) == pytest.approx(0.8)  # 40² / (2·1000)
    assert jain_index([7.0]) == 1.0


def test_undefined_and_invalid() -> None:
    assert math.isnan(jain_index([0, 0]))
    with pytest.raises(ValueError):
        jain_index([])
    with pytest.raises(ValueError):
        jain_index([1, -1])


def test_over_time() -> None:
    rates = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 3.0]])
    result = jain_over_time(rates)
    assert result[0] == pytest.approx(1.0)
    assert result[1] == pytest.approx(0.5)
    assert math.isnan(result[2])
    assert result[3] == pytest.approx(0.5)
