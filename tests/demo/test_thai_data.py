"""gateway/demo/thai_data.py: the reference data the seed draws on (district centroids)."""

from __future__ import annotations

from connectors.districts import all_districts
from gateway.demo import thai_data


def test_centroids_cover_all_districts_inside_bangkok():
    assert set(thai_data.DISTRICT_CENTROIDS) == {d.code for d in all_districts()}
    for lat, lon in thai_data.DISTRICT_CENTROIDS.values():
        assert 13.49 <= lat <= 13.96 and 100.32 <= lon <= 100.94
