-- Data-quality results (great-expectations suites of schemas/expectations.yaml, run by fangpin/quality.py).
-- One row per month x suite x expectation; a run of month M replaces exactly the rows of M.
CREATE SCHEMA IF NOT EXISTS quality;
CREATE TABLE IF NOT EXISTS quality.results (
    month VARCHAR NOT NULL,
    suite VARCHAR NOT NULL,            -- department.list, or 'roster'
    department VARCHAR,                -- department slug; 'roster' for the roster
    check_name VARCHAR NOT NULL,       -- the expectation's key in schemas/expectations.yaml (valid_ids, ...)
    expectation VARCHAR NOT NULL,      -- great-expectations type, e.g. expect_column_values_to_be_unique
    column_name VARCHAR,               -- the judged column of the quality frame
    success BOOLEAN NOT NULL,
    observed VARCHAR,                  -- what was found, e.g. '92.0%' or '3 行'
    threshold VARCHAR,                 -- what was required, e.g. '>= 95%'
    description_zh VARCHAR NOT NULL,   -- the sentence a clerk reads
    rows_evaluated BIGINT,             -- rows judged (rows with an empty value are not judged)
    unexpected_count BIGINT,           -- rows that failed the expectation
    examples VARCHAR,                  -- up to three offending rows: file, sheet, row
    checked_at TIMESTAMP
);
