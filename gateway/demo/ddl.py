"""Table definitions of the three upstream systems as the demo and the tests host them.

Production systems own their schemas; these mirror what the connectors read. The tax system
lives in one database (schema ``tax``), the 50 district registries in one database as 50
schemas ``d1001`` … ``d1050`` (each treated by the connector as its own source), and the
Traffy Fondue stand-in keeps its tickets, as the public API serves them, in ``traffy``.
"""

TAX_DDL = """
CREATE SCHEMA IF NOT EXISTS tax;
CREATE TABLE tax.owners (
    id           bigint PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('person', 'juristic')),
    name         text NOT NULL,
    national_id  char(13) NOT NULL UNIQUE
);
CREATE TABLE tax.parcels (
    id                 bigint PRIMARY KEY,
    title_deed_type    text NOT NULL CHECK (title_deed_type IN ('chanote', 'nor_sor_3_kor', 'nor_sor_3')),
    title_deed_number  text NOT NULL,
    district_code      char(4) NOT NULL,
    land_use           text NOT NULL
        CHECK (land_use IN ('agricultural', 'residential', 'commercial_other', 'vacant')),
    area_sqm           numeric(12, 2) NOT NULL,
    appraised_value    numeric(16, 2) NOT NULL,
    lat                double precision NOT NULL,
    lon                double precision NOT NULL,
    owner_id           bigint NOT NULL REFERENCES tax.owners (id)
);
CREATE INDEX parcels_district_idx ON tax.parcels (district_code, id);
CREATE INDEX parcels_owner_idx ON tax.parcels (owner_id);
CREATE TABLE tax.assessments (
    parcel_id  bigint NOT NULL REFERENCES tax.parcels (id),
    tax_year   int NOT NULL,
    base       numeric(16, 2) NOT NULL,
    exemption  numeric(16, 2) NOT NULL,
    rate       numeric(8, 5) NOT NULL,
    tax_due    numeric(14, 2) NOT NULL,
    status     text NOT NULL CHECK (status IN ('paid', 'unpaid', 'overdue', 'exempt')),
    paid_at    timestamptz,
    PRIMARY KEY (parcel_id, tax_year)
);
CREATE INDEX assessments_year_idx ON tax.assessments (tax_year);
CREATE TABLE tax.signboards (
    id                        bigint PRIMARY KEY,
    business_registration_no  text NOT NULL,
    parcel_id                 bigint REFERENCES tax.parcels (id),
    district_code             char(4) NOT NULL,
    sign_type                 smallint NOT NULL CHECK (sign_type IN (1, 2, 3)),
    area_cm2                  int NOT NULL CHECK (area_cm2 > 0),
    moving                    boolean NOT NULL,
    tax_year                  int NOT NULL,
    tax_due                   numeric(12, 2) NOT NULL,
    status                    text NOT NULL CHECK (status IN ('paid', 'unpaid', 'overdue')),
    paid_at                   timestamptz,
    CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX signboards_business_idx ON tax.signboards (business_registration_no);
CREATE INDEX signboards_parcel_idx ON tax.signboards (parcel_id);
"""

# One district registry; {schema} is the district's schema name, e.g. d1039.
REGISTRY_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {schema}.commercial_registrations (
    registration_no  text PRIMARY KEY,
    business_name    text NOT NULL,
    business_type    text NOT NULL,
    owner_name       text NOT NULL,
    owner_id         char(13) NOT NULL,
    address          text NOT NULL,
    registered_on    date NOT NULL,
    status           text NOT NULL CHECK (status IN ('active', 'suspended', 'closed'))
);
CREATE INDEX ON {schema}.commercial_registrations (business_type);
CREATE TABLE {schema}.licences (
    licence_no       text PRIMARY KEY,
    registration_no  text NOT NULL REFERENCES {schema}.commercial_registrations (registration_no),
    kind             text NOT NULL CHECK (kind IN ('health_hazard', 'food_premises')),
    issued_on        date NOT NULL,
    expires_on       date NOT NULL
);
CREATE INDEX ON {schema}.licences (registration_no);
CREATE TABLE {schema}.building_permits (
    permit_no       text PRIMARY KEY,
    applicant_name  text NOT NULL,
    applicant_id    char(13) NOT NULL,
    address         text NOT NULL,
    building_type   text NOT NULL,
    floors          int NOT NULL,
    area_sqm        numeric(12, 2) NOT NULL,
    permitted_on    date NOT NULL
);
CREATE TABLE {schema}.population_stats (
    year        int NOT NULL,
    sex         text NOT NULL CHECK (sex IN ('male', 'female')),
    age_band    text NOT NULL,
    population  int NOT NULL,
    PRIMARY KEY (year, sex, age_band)
);
"""

TRAFFY_DDL = """
CREATE SCHEMA IF NOT EXISTS traffy;
CREATE TABLE traffy.tickets (
    ticket_id  text PRIMARY KEY,
    doc        jsonb NOT NULL
);
CREATE TABLE traffy.reporter_contacts (
    ticket_id  text PRIMARY KEY REFERENCES traffy.tickets (ticket_id),
    name       text NOT NULL,
    phone      text NOT NULL
);
"""

# Written last by the seed, so its presence means the data is complete.
META_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.seed_info (
    version     int NOT NULL,
    scale       jsonb NOT NULL,
    seeded_at   timestamptz NOT NULL DEFAULT now()
);
"""

AGE_BANDS = ("0-14", "15-29", "30-44", "45-59", "60-74", "75+")


def registry_schema(district_code: str) -> str:
    """The schema name a district registry lives in, e.g. ``d1039``."""
    return f"d{district_code}"


# The finance and procurement system, after MIS2 (budget and disbursement) and e-GP
# (procurement): fiscal years run October-September under their Buddhist-era label.
FINANCE_DDL = """
CREATE SCHEMA IF NOT EXISTS finance;
CREATE TABLE finance.fiscal_years (
    year       int PRIMARY KEY,  -- Buddhist era, e.g. 2568 = 1 Oct 2024 - 30 Sep 2025
    starts_on  date NOT NULL,
    ends_on    date NOT NULL
);
CREATE TABLE finance.units (
    code           text PRIMARY KEY,
    name_th        text NOT NULL,
    name_en        text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('department', 'district_office')),
    district_code  char(4) UNIQUE,  -- the district a district office serves
    CHECK ((kind = 'district_office') = (district_code IS NOT NULL))
);
CREATE TABLE finance.budget_lines (
    id              bigint PRIMARY KEY,
    fiscal_year     int NOT NULL REFERENCES finance.fiscal_years (year),
    unit_code       text NOT NULL REFERENCES finance.units (code),
    plan            text NOT NULL,
    project         text NOT NULL,
    economic_class  text NOT NULL CHECK (economic_class IN
        ('personnel', 'operating', 'investment', 'subsidy', 'other', 'central')),
    proposed        numeric(16, 2) NOT NULL CHECK (proposed >= 0),
    approved        numeric(16, 2) NOT NULL CHECK (approved >= 0),
    adjusted        numeric(16, 2) NOT NULL,  -- transfers in (+) and out (-) during the year
    disbursed       numeric(16, 2) NOT NULL CHECK (disbursed >= 0),
    CHECK (approved + adjusted >= 0),
    CHECK (disbursed <= approved + adjusted)
);
CREATE INDEX budget_lines_unit_idx ON finance.budget_lines (unit_code, fiscal_year);
CREATE TABLE finance.suppliers (
    id               bigint PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('juristic', 'person')),
    name             text NOT NULL,
    tax_id           char(13) NOT NULL UNIQUE,  -- juristic id, or a person's national id
    registration_no  text UNIQUE,  -- commercial registration at a district office, if any
    address          text NOT NULL
);
CREATE TABLE finance.processes (
    id               text PRIMARY KEY,  -- the e-GP project number
    fiscal_year      int NOT NULL REFERENCES finance.fiscal_years (year),
    title            text NOT NULL,
    buyer_code       text NOT NULL REFERENCES finance.units (code),
    budget_line_id   bigint NOT NULL REFERENCES finance.budget_lines (id),
    method           text NOT NULL CHECK (method IN ('e_bidding', 'e_market', 'selection', 'specific')),
    category         text NOT NULL CHECK (category IN ('goods', 'services', 'works')),
    budget           numeric(16, 2) NOT NULL CHECK (budget > 0),
    reference_price  numeric(16, 2) NOT NULL CHECK (reference_price > 0),
    announced_on     date NOT NULL,
    bid_deadline     date,
    status           text NOT NULL CHECK (status IN ('tender', 'awarded', 'contracted', 'cancelled'))
);
CREATE INDEX processes_buyer_idx ON finance.processes (buyer_code, fiscal_year);
CREATE TABLE finance.bids (
    process_id     text NOT NULL REFERENCES finance.processes (id),
    supplier_id    bigint NOT NULL REFERENCES finance.suppliers (id),
    offered_price  numeric(16, 2) NOT NULL CHECK (offered_price > 0),
    submitted_on   date NOT NULL,
    status         text NOT NULL CHECK (status IN ('valid', 'disqualified')),
    PRIMARY KEY (process_id, supplier_id)
);
CREATE TABLE finance.awards (
    id           bigint PRIMARY KEY,
    process_id   text NOT NULL UNIQUE REFERENCES finance.processes (id),
    supplier_id  bigint NOT NULL REFERENCES finance.suppliers (id),
    value        numeric(16, 2) NOT NULL CHECK (value > 0),
    awarded_on   date NOT NULL
);
-- The connector's lookups by foreign key (connectors/finance.py): a process's bundle reads its
-- contract's payments and amendments, and its supplier's awards near the same date (split
-- contracts). Without these, each process of a page scanned those tables whole.
CREATE INDEX awards_supplier_idx ON finance.awards (supplier_id, awarded_on);
CREATE TABLE finance.contracts (
    id              bigint PRIMARY KEY,
    process_id      text NOT NULL UNIQUE REFERENCES finance.processes (id),
    award_id        bigint NOT NULL REFERENCES finance.awards (id),
    contract_no     text NOT NULL UNIQUE,
    supplier_id     bigint NOT NULL REFERENCES finance.suppliers (id),
    original_value  numeric(16, 2) NOT NULL CHECK (original_value > 0),
    value           numeric(16, 2) NOT NULL CHECK (value > 0),  -- after amendments
    signed_on       date NOT NULL,
    starts_on       date NOT NULL,
    original_ends_on date NOT NULL,
    ends_on         date NOT NULL,  -- after amendments
    status          text NOT NULL CHECK (status IN ('active', 'completed', 'terminated'))
);
CREATE INDEX contracts_supplier_idx ON finance.contracts (supplier_id, signed_on);
CREATE TABLE finance.milestones (
    contract_id  bigint NOT NULL REFERENCES finance.contracts (id),
    seq          int NOT NULL,
    title        text NOT NULL,
    due_on       date NOT NULL,
    met_on       date,
    value        numeric(16, 2) NOT NULL,
    PRIMARY KEY (contract_id, seq)
);
CREATE TABLE finance.payments (
    id             bigint PRIMARY KEY,
    contract_id    bigint NOT NULL REFERENCES finance.contracts (id),
    milestone_seq  int NOT NULL,
    paid_on        date NOT NULL,
    amount         numeric(16, 2) NOT NULL CHECK (amount > 0),
    FOREIGN KEY (contract_id, milestone_seq) REFERENCES finance.milestones (contract_id, seq)
);
CREATE INDEX payments_contract_idx ON finance.payments (contract_id);
CREATE TABLE finance.amendments (
    id            bigint PRIMARY KEY,
    process_id    text NOT NULL REFERENCES finance.processes (id),
    contract_id   bigint REFERENCES finance.contracts (id),  -- null: the tender was amended
    amended_on    date NOT NULL,
    rationale     text NOT NULL,
    value_before  numeric(16, 2),
    value_after   numeric(16, 2),
    ends_before   date,
    ends_after    date
);
CREATE INDEX amendments_process_idx ON finance.amendments (process_id);
CREATE INDEX amendments_contract_idx ON finance.amendments (contract_id);
CREATE TABLE finance.projects (
    id             text PRIMARY KEY,  -- the infrastructure project's id
    process_id     text NOT NULL UNIQUE REFERENCES finance.processes (id),
    title          text NOT NULL,
    purpose        text NOT NULL,
    sector         text NOT NULL,
    district_code  char(4) NOT NULL,
    lat            double precision NOT NULL,
    lon            double precision NOT NULL,
    budget         numeric(16, 2) NOT NULL,
    progress_pct   numeric(5, 2) NOT NULL CHECK (progress_pct BETWEEN 0 AND 100),
    status         text NOT NULL CHECK (status IN ('planning', 'implementation', 'completed'))
);
"""
