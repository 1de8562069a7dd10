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
