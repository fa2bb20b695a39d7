"""The API helpers every part of the Kubernetes actuator shares: backoff and error reading."""

from __future__ import annotations

from autoscaler.adapters.kube_api import BACKOFF_BASE_S, BACKOFF_CAP_S, api_error, backoff


def test_backoff_is_exponential_jittered_and_capped() -> None:
    for failures in range(1, 12):
        delay = backoff(failures)
        step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
        assert 0.5 * step <= delay < 1.5 * step


def test_api_errors_carry_the_message_and_a_bounded_retry_after() -> None:
    assert api_error(429, b'{"message": "slow down"}', "3").retry_after_s == 3
    assert api_error(429, b"not json", "3600").retry_after_s == BACKOFF_CAP_S
    error = api_error(503, b"<html>", "soon")
    assert (error.code, error.retry_after_s) == (503, None)
    assert "<html>" in error.message
