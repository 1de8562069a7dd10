"""District reference data and the tolerant parsing of Traffy Fondue tickets."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.districts import all_districts, code_for_name, district
from connectors.traffy import parse_ticket


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


def test_ticket_in_the_current_shape():
    t = parse_ticket(
        {
            "ticket_id": "2024-ABC123",
            "type": "{ถนน,ทางเท้า}",
            "organization": "เขตบางรัก,สำนักการโยธา",
            "comment": "ทางเท้าชำรุด",
            "photo": "https://example.invalid/a.jpg",
            "coords": ["100.523186", "13.728000"],
            "district": "บางรัก",
            "state": "เสร็จสิ้น",
            "star": 4,
            "count_reopen": "1",
            "timestamp": "2024-01-05 10:22:31.123456+00",
            "last_activity": "2024-01-06 08:00:00+00",
        }
    )
    assert t["types"] == ["ถนน", "ทางเท้า"]
    assert t["organizations"] == ["เขตบางรัก", "สำนักการโยธา"]
    assert t["description"] == "ทางเท้าชำรุด"
    assert t["photo_url"] == "https://example.invalid/a.jpg"
    assert (t["lat"], t["lon"]) == (13.728, 100.523186)
    assert t["district_code"] == "1004"
    assert t["state"] == "COMPLETED"
    assert t["count_reopen"] == 1
    assert t["reported_at"] == datetime(2024, 1, 5, 10, 22, 31, 123456, tzinfo=UTC)


def test_ticket_in_older_spellings_and_with_broken_fields():
    t = parse_ticket(
        {
            "ticket_id": "2022-XYZ",
            "problem_type_fondue": ["น้ำท่วม"],
            "org": ["เขตดุสิต"],
            "description": "น้ำท่วมขัง",
            "photo_url": "https://example.invalid/b.jpg",
            "coords": "100.51,13.77",
            "district": "เขตดุสิต ",
            "state": "สถานะใหม่ที่ไม่รู้จัก",
            "star": "",
            "timestamp": "not a time",
        }
    )
    assert t["types"] == ["น้ำท่วม"]
    assert t["organizations"] == ["เขตดุสิต"]
    assert t["description"] == "น้ำท่วมขัง"
    assert t["photo_url"] == "https://example.invalid/b.jpg"
    assert (t["lon"], t["lat"]) == (100.51, 13.77)
    assert t["district_code"] == "1002"
    assert t["state"] == "OTHER"
    assert t["star"] is None
    assert t["reported_at"] is None
    assert parse_ticket({"type": "{ถนน}"}) is None
    assert parse_ticket({"ticket_id": "x", "coords": ["a", "b"]})["lat"] is None
