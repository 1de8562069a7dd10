"""Fields computable from others: the policy declares them (``derived_from``) and `policy check`
refuses a derived field more restricted than the least restricted set of its inputs, since
whoever may read the inputs can compute it anyway (policies/model.py, docs/policy.md).

Signboard.taxDue was internal although anyone recomputes it from the public signType,
areaCm2 and moving with the Signboard Tax Act's published rates: it is public now.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.demo.embedded import DatabaseUrls
from gateway.demo.tax_rules import signboard_tax
from policies.model import DEFAULT_POLICY, ClearAccess, PolicyError, load_policy
from policies.principal import Level
from support import Gateway, sql

SIGNBOARD_TAX = 'taxDue = { level = "public", derived_from = ["signType", "areaCm2", "moving"] }'


def policy_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return caught.value.problems


# ---------------------------------------------------------------------------- the defect


def test_anyone_reads_the_signboard_tax_they_could_compute(anonymous: Gateway):
    data = anonymous.query(
        "{ parcels(filter: {landUse: COMMERCIAL_OTHER}, first: 300) "
        "{ edges { node { signboards { signType areaCm2 moving taxDue } } } } }"
    )
    signs = [s for e in data["parcels"]["edges"] for s in e["node"]["signboards"]]
    assert len(signs) >= 10
    for s in signs:
        assert Decimal(s["taxDue"]) == signboard_tax(s["signType"], s["areaCm2"], s["moving"])


def test_every_seeded_signboard_tax_is_the_published_rate_of_its_public_fields(
    db: DatabaseUrls,
):
    rows = sql(db.tax, "SELECT sign_type, area_cm2, moving, tax_due FROM tax.signboards")
    assert len(rows) > 1000
    assert all(
        r["tax_due"] == signboard_tax(r["sign_type"], r["area_cm2"], r["moving"]) for r in rows
    )


# ---------------------------------------------------------------------------- the policy check


def test_a_derived_field_more_restricted_than_its_inputs_is_refused(tmp_path, capsys):
    path = policy_with(
        tmp_path,
        SIGNBOARD_TAX,
        'taxDue = { level = "internal", derived_from = ["signType", "areaCm2", "moving"] }',
    )
    problem = (
        "Signboard.taxDue needs clearance internal and scopes tax:read, but it is derived from "
        "Signboard.signType, Signboard.areaCm2, Signboard.moving, which need nothing (public): "
        "classify it no more restricted than its inputs"
    )
    assert problems_of(path) == [problem]
    assert main(["policy", "check", "--file", str(path)]) == 1
    assert problem in capsys.readouterr().err


def test_the_least_restricted_set_of_inputs_decides(tmp_path):
    # Computable from the confidential assessment or from the public fields: the public set
    # is the one an outsider uses.
    path = policy_with(
        tmp_path,
        SIGNBOARD_TAX,
        'taxDue = { level = "confidential", derived_from = [["Assessment.taxDue"], '
        '["signType", "areaCm2", "moving"]] }',
    )
    [problem] = problems_of(path)
    assert problem.startswith("Signboard.taxDue needs clearance confidential and scopes tax:read")
    assert "derived from Signboard.signType, Signboard.areaCm2, Signboard.moving" in problem
    # From the confidential assessment alone: confidential is fine.
    path = policy_with(
        tmp_path,
        SIGNBOARD_TAX,
        'taxDue = { level = "confidential", derived_from = ["Assessment.taxDue"] }',
    )
    assert load_policy(path).rule("Signboard", "taxDue").derived_from == (("Assessment.taxDue",),)


def test_derived_from_must_name_other_classified_fields(tmp_path):
    path = policy_with(
        tmp_path,
        SIGNBOARD_TAX,
        'taxDue = { level = "public", derived_from = ["signType", "colour", "taxDue"] }',
    )
    assert problems_of(path) == [
        "Signboard.taxDue: derived_from names Signboard.colour, Signboard.taxDue, which is not "
        "another classified field"
    ]
    path = policy_with(tmp_path, SIGNBOARD_TAX, 'taxDue = { level = "public", derived_from = [] }')
    assert problems_of(path) == [
        "Signboard.taxDue: derived_from is a list of field names, or a list of such lists"
    ]


TAX = frozenset({"tax:read"})


@pytest.mark.parametrize(
    ("derived", "inputs", "exceeds"),
    [
        # Public aggregates of restricted inputs are allowed: less restricted is fine.
        (ClearAccess(), [ClearAccess(Level.CONFIDENTIAL, TAX)], False),
        (
            ClearAccess(Level.CONFIDENTIAL, TAX),
            [ClearAccess(), ClearAccess(Level.CONFIDENTIAL, TAX)],
            False,
        ),
        (ClearAccess(Level.INTERNAL, TAX), [ClearAccess()], True),
        # Another dataset's scope is a restriction the inputs' readers may not hold.
        (
            ClearAccess(Level.INTERNAL, frozenset({"registry:read"})),
            [ClearAccess(Level.INTERNAL, TAX)],
            True,
        ),
        # A purpose the inputs do not need, or a narrower set of purposes.
        (
            ClearAccess(Level.INTERNAL, TAX, frozenset({"research"})),
            [ClearAccess(Level.INTERNAL, TAX)],
            True,
        ),
        (
            ClearAccess(Level.INTERNAL, TAX, frozenset({"research"})),
            [ClearAccess(Level.INTERNAL, TAX, frozenset({"research", "tax-collection"}))],
            True,
        ),
        (
            ClearAccess(Level.INTERNAL, TAX, frozenset({"research", "tax-collection"})),
            [
                ClearAccess(Level.INTERNAL, TAX, frozenset({"research", "audit"})),
                ClearAccess(Level.INTERNAL, TAX, frozenset({"research", "tax-collection"})),
            ],
            False,
        ),
    ],
)
def test_more_restricted_means_some_reader_of_the_inputs_may_not_read_it(derived, inputs, exceeds):
    assert derived.exceeds(ClearAccess.together(inputs)) is exceeds


def test_the_shipped_policy_declares_the_signboard_tax_derived_and_public():
    rule = load_policy().rule("Signboard", "taxDue")
    assert rule.open
    assert rule.derived_from == (("Signboard.signType", "Signboard.areaCm2", "Signboard.moving"),)
