"""Kafka's cluster id as ``devtools.services`` draws it: a Kafka Uuid that the storage tool's
argument parser never mistakes for an option."""

from __future__ import annotations

import base64

from devtools.services import kafka_cluster_id


def test_cluster_ids_are_kafka_uuids_that_never_start_with_a_dash() -> None:
    # One plain draw in 64 starts with "-": among 5,000 draws, some would.
    ids = {kafka_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    for cluster_id in ids:
        assert not cluster_id.startswith("-")
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
