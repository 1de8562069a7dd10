"""connectors/districts.py: the 50 districts, their codes, and their names in every spelling."""

from __future__ import annotations

from connectors.districts import all_districts, code_for_name, district


def test_fifty_districts_with_codes_1001_to_1050():
    codes = [d.code for d in all_districts()]
    assert codes == [str(c) for c in range(1001, 1051)]
    assert district("1039").name_en == "Khet Watthana"


def test_district_names_in_every_spelling_map_to_the_code():
    assert code_for_name("บางรัก") == "1004"
    assert code_for_name("เขตบางรัก") == "1004"
    assert code_for_name(" บาง รัก ") == "1004"
    assert code_for_name("Khet Bang Rak") == "1004"
    assert code_for_name("bang rak") == "1004"
    assert code_for_name("เมืองเชียงใหม่") is None
    assert code_for_name(None) is None
