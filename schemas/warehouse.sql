-- The fangpin warehouse (one DuckDB file: DIR/warehouse/fangpin.duckdb).
-- Month-partitioned tables carry `month` (text YYYY-MM); a run of month M replaces exactly the rows of M.
-- Tables under `cases` carry history across months and are never replaced wholesale.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS roster;
CREATE SCHEMA IF NOT EXISTS quarantine;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS cases;

-- Every file found in the month's drop zone, read or not.
CREATE TABLE IF NOT EXISTS raw.received_files (
    month VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,      -- path relative to the data dir
    department VARCHAR,                -- slug, NULL when the folder is not a known department
    folder VARCHAR,
    lists VARCHAR[],                   -- list keys recognised in its sheets
    sha256 VARCHAR,
    size_bytes BIGINT,
    modified_at TIMESTAMP,             -- file modification time (arrival, for on-time reporting)
    first_seen TIMESTAMP,              -- first run that saw this content (kept across re-runs)
    status VARCHAR NOT NULL,           -- read | ignored | duplicate | quarantined
    note VARCHAR,
    duplicate_of VARCHAR,
    rows_read BIGINT,
    rows_accepted BIGINT,
    rows_rejected BIGINT
);

-- Accepted rows of every department list, with lineage to file, sheet and Excel row.
CREATE TABLE IF NOT EXISTS staging.list_rows (
    month VARCHAR NOT NULL,
    list_key VARCHAR NOT NULL,         -- department.list
    department VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    sheet VARCHAR NOT NULL,
    row_number INTEGER NOT NULL,
    id_number VARCHAR NOT NULL,        -- normalised 18-character resident ID
    name VARCHAR,
    township VARCHAR,                  -- resolved against the roster, NULL when unknown
    village VARCHAR,
    township_raw VARCHAR,
    village_raw VARCHAR,
    division_code VARCHAR,
    event_date DATE,
    amount DOUBLE,
    detail VARCHAR,
    disability_cert VARCHAR,
    raw VARCHAR                        -- JSON: original header -> cell text
);

CREATE TABLE IF NOT EXISTS roster.townships (
    month VARCHAR NOT NULL, township VARCHAR NOT NULL, township_code VARCHAR, households BIGINT, persons BIGINT
);
CREATE TABLE IF NOT EXISTS roster.villages (
    month VARCHAR NOT NULL, township VARCHAR NOT NULL, village VARCHAR NOT NULL, division_code VARCHAR,
    households BIGINT, persons BIGINT
);
CREATE TABLE IF NOT EXISTS roster.persons (
    month VARCHAR NOT NULL,
    household_id VARCHAR NOT NULL,
    id_number VARCHAR NOT NULL,
    name VARCHAR,
    relation VARCHAR,
    is_head BOOLEAN,
    sex VARCHAR,                       -- 男/女 from the ID's sequence digit
    birth_date DATE,                   -- from the ID
    township VARCHAR,
    village VARCHAR,
    division_code VARCHAR,
    labour VARCHAR,                    -- 劳动技能
    health VARCHAR,                    -- 健康状况
    phone VARCHAR,
    source_file VARCHAR, sheet VARCHAR, row_number INTEGER
);
CREATE TABLE IF NOT EXISTS roster.households (
    month VARCHAR NOT NULL,
    household_id VARCHAR NOT NULL,
    township VARCHAR,
    village VARCHAR,
    division_code VARCHAR,
    head_name VARCHAR,
    head_id_number VARCHAR,
    household_type VARCHAR,            -- 脱贫户 / 一般农户
    monitoring_category VARCHAR,       -- 脱贫不稳定户 / 边缘易致贫户 / 突发严重困难户 / NULL
    risk_eliminated BOOLEAN,
    identified_on DATE,
    household_size INTEGER,            -- 家庭人口数 as reported, else members counted
    members INTEGER,                   -- persons on the roster
    wages DOUBLE,                      -- A28
    business_income DOUBLE,            -- A29
    property_income DOUBLE,            -- A30
    transfer_income DOUBLE,            -- A31
    business_costs DOUBLE,             -- A32
    insurance_payouts DOUBLE,          -- A35
    compliant_oop DOUBLE,              -- A36
    a33_net_income DOUBLE,             -- A28+A29+A30+A31-A32
    a34_per_capita DOUBLE,             -- A33 / size
    a37_disposable DOUBLE,             -- A33+A35-A36
    a38_per_capita DOUBLE,             -- A37 / size
    cadre VARCHAR,
    phone VARCHAR,
    income_unreadable BOOLEAN          -- an income item only unreadable cells fill (-, 约3000): A33-A38 unknown
);
-- Warehouses made before income_unreadable existed gain it (NULL for their earlier months).
ALTER TABLE roster.households ADD COLUMN IF NOT EXISTS income_unreadable BOOLEAN;

CREATE TABLE IF NOT EXISTS quarantine.rejected_rows (
    month VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    sheet VARCHAR,
    row_number INTEGER,                -- Excel row as the clerk sees it; NULL for a whole file or sheet
    list_key VARCHAR,                  -- NULL when the list was not recognised; 'roster' for the roster
    column_name VARCHAR,
    reason_code VARCHAR NOT NULL,      -- a key of schemas/reasons.py REJECT
    reason VARCHAR NOT NULL,           -- the sentence a clerk reads (Chinese)
    id_raw VARCHAR,                    -- the ID cell as received (for probable matching by name)
    name VARCHAR,
    township_raw VARCHAR,
    village_raw VARCHAR,
    raw VARCHAR,                       -- JSON: original header -> cell text
    id_number VARCHAR                  -- the ID as validation normalised it, when the ID itself was valid
);
CREATE TABLE IF NOT EXISTS quarantine.row_notes (
    month VARCHAR NOT NULL, source_file VARCHAR NOT NULL, sheet VARCHAR, row_number INTEGER,
    list_key VARCHAR, column_name VARCHAR, note_code VARCHAR NOT NULL, note VARCHAR NOT NULL
);

-- Per month x department list: what was read, accepted and rejected (the reconciliation the asset check asserts).
CREATE TABLE IF NOT EXISTS raw.list_counts (
    month VARCHAR NOT NULL,
    list_key VARCHAR NOT NULL,
    department VARCHAR NOT NULL,
    files INTEGER,                     -- files (or sheets) recognised as this list
    rows_read BIGINT,
    rows_accepted BIGINT,
    rows_rejected BIGINT,
    rows_noted BIGINT,                 -- accepted rows with a note (a date or place that could not be used)
    file_problems INTEGER              -- files or sheets of this list that could not be read at all
);

-- Every township workbook and analysts' snapshot fangpin wrote: who, when, what (personal data leaves the warehouse here).
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.exports (
    exported_at TIMESTAMP NOT NULL,
    month VARCHAR NOT NULL,
    township VARCHAR,
    path VARCHAR NOT NULL,
    households INTEGER,
    os_user VARCHAR,
    encrypted BOOLEAN,                 -- the workbook is encrypted with the township's password
    kind VARCHAR                       -- township_workbook | analyst_snapshot
);
-- Warehouses created before these columns existed get them here (a no-op once present).
ALTER TABLE audit.exports ADD COLUMN IF NOT EXISTS encrypted BOOLEAN;
ALTER TABLE audit.exports ADD COLUMN IF NOT EXISTS kind VARCHAR;
ALTER TABLE quarantine.rejected_rows ADD COLUMN IF NOT EXISTS id_number VARCHAR;
