-- Large-scale relapse risk (规模性返贫风险) per township and village, and the departments' submission report.
-- Written by fangpin/risk.py and fangpin/submissions.py; rules and thresholds in config/dashboard.yaml.
-- Month-partitioned (`month` text YYYY-MM): a run of month M deletes and re-inserts exactly M's rows.
--
-- Count maps are MAP(VARCHAR, INTEGER) with every key of the vocabulary present (0 included), e.g.
--   risk_counts['因病因残'], gap_counts['住房安全'], form_risk_counts['因学']   (DuckDB: map['key'] gives the value).
-- The long tables *_risk_types hold the same nine counts one row per type, with the trend.
CREATE SCHEMA IF NOT EXISTS marts;

-- One row per month x township (every township of the roster in force, plus any township only the queue names).
CREATE TABLE IF NOT EXISTS marts.township_risk (
    month VARCHAR NOT NULL,
    township VARCHAR NOT NULL,
    households BIGINT,                  -- roster households (latest roster at or before the month); NULL when unknown
    warned_households BIGINT,           -- households in marts.warning_queue this month
    rate_per_1000 DOUBLE,               -- warned households per 1,000 roster households
    risk_counts MAP(VARCHAR, INTEGER),  -- warned households per relapse type (the nine of seed 001)
    gap_counts MAP(VARCHAR, INTEGER),   -- warned households per A23-A26 gap (住房安全, 饮水安全, 义务教育, 基本医疗保险)
    form_risk_counts MAP(VARCHAR, INTEGER), -- warned households per A27 label (因病 ... 其他)
    trailing_months INTEGER,            -- earlier months compared with (0: no history, trend rules not evaluated)
    warned_trailing_avg DOUBLE,         -- average warned households over those months
    warned_change DOUBLE,               -- warned_households - warned_trailing_avg
    warned_change_ratio DOUBLE,         -- warned_households / warned_trailing_avg (NULL when the average is 0)
    rising_types VARCHAR[],             -- relapse types that fired the rising rule
    largest_cluster_village VARCHAR,    -- the largest same-event cluster (one event, one village)
    largest_cluster_event VARCHAR,      -- e.g. 因自然灾害-洪涝
    largest_cluster_households INTEGER,
    largest_cluster_share DOUBLE,       -- of the village's roster households (0..1), NULL when unknown
    overdue_cases INTEGER,              -- households with a verification past its deadline
    level VARCHAR NOT NULL,             -- green / yellow / orange / red
    level_rank INTEGER NOT NULL,        -- 0 green .. 3 red (for sorting)
    reasons VARCHAR NOT NULL,           -- why, in words (Chinese), joined with "；"
    driving_villages VARCHAR[]          -- villages whose own level reaches the township's (when not green)
);

-- One row per month x village: the same measures for one village, and whether it drives its township's level.
CREATE TABLE IF NOT EXISTS marts.village_risk (
    month VARCHAR NOT NULL,
    township VARCHAR NOT NULL,
    village VARCHAR NOT NULL,
    division_code VARCHAR,
    households BIGINT,
    warned_households BIGINT,
    rate_per_1000 DOUBLE,
    risk_counts MAP(VARCHAR, INTEGER),
    gap_counts MAP(VARCHAR, INTEGER),
    form_risk_counts MAP(VARCHAR, INTEGER),
    trailing_months INTEGER,
    warned_trailing_avg DOUBLE,
    warned_change DOUBLE,
    warned_change_ratio DOUBLE,
    rising_types VARCHAR[],
    largest_cluster_event VARCHAR,
    largest_cluster_households INTEGER,
    largest_cluster_share DOUBLE,
    overdue_cases INTEGER,
    level VARCHAR NOT NULL,
    level_rank INTEGER NOT NULL,
    reasons VARCHAR NOT NULL,
    share_of_township_warned DOUBLE,    -- this village's warned households / the township's
    drives_township_level BOOLEAN       -- its own level reaches the township's level (and that is not green)
);

-- One row per month x township x relapse type (all nine, zeros included).
CREATE TABLE IF NOT EXISTS marts.township_risk_types (
    month VARCHAR NOT NULL,
    township VARCHAR NOT NULL,
    risk_type VARCHAR NOT NULL,         -- one of the nine (config/dashboard.yaml risk.relapse_types)
    type_order INTEGER NOT NULL,        -- the seed's order, 1..9
    households INTEGER NOT NULL,
    trailing_months INTEGER,
    trailing_avg DOUBLE,                -- NULL when no earlier month
    ratio_to_trailing DOUBLE,           -- NULL when no earlier month or the average is 0
    rising BOOLEAN,                     -- fired the rising rule
    fed_by VARCHAR[],                   -- department lists that can feed this type
    note VARCHAR                        -- e.g. 无对应部门名单，恒为0 (no data, not "no risk")
);

CREATE TABLE IF NOT EXISTS marts.village_risk_types (
    month VARCHAR NOT NULL,
    township VARCHAR NOT NULL,
    village VARCHAR NOT NULL,
    risk_type VARCHAR NOT NULL,
    type_order INTEGER NOT NULL,
    households INTEGER NOT NULL,
    trailing_months INTEGER,
    trailing_avg DOUBLE,
    ratio_to_trailing DOUBLE,
    rising BOOLEAN,
    fed_by VARCHAR[],
    note VARCHAR
);

-- One row per month x department list of the registry (received or not).
CREATE TABLE IF NOT EXISTS marts.submissions (
    month VARCHAR NOT NULL,
    department VARCHAR NOT NULL,        -- slug, e.g. civil_affairs
    list VARCHAR NOT NULL,              -- list_key, e.g. civil_affairs.dibao
    department_name VARCHAR,            -- 民政局
    list_title VARCHAR,                 -- 新增农村低保人员名单
    kind VARCHAR,                       -- risk | eligibility
    due_at TIMESTAMP,                   -- end of the due day (county.yaml submissions.due_day of the next month)
    received BOOLEAN NOT NULL,
    on_time BOOLEAN,                    -- NULL when not received (or arrival time unknown)
    status VARCHAR NOT NULL,            -- 按时报送 / 逾期报送 / 未报送 / 已报送（到达时间不明）
    arrived_at TIMESTAMP,               -- latest arrival of its files
    arrival_source VARCHAR,             -- arrived_at | modified_at | first_seen: where arrived_at came from
    days_late INTEGER,                  -- whole days after the due day, NULL when on time or not received
    files INTEGER,                      -- files (or sheets) recognised as this list
    file_problems INTEGER,              -- of them, files or sheets that could not be read at all
    rows BIGINT,                        -- rows read
    accepted_rows BIGINT,
    rejected_rows BIGINT,
    reason_counts MAP(VARCHAR, INTEGER),-- quarantine reason_code -> rows (or files)
    main_reasons VARCHAR,               -- the most frequent reasons in words with counts, joined with "；"
    department_unrecognised_files INTEGER -- files in the department's folder this month that matched no list
);

-- The latest month's submission status per list (what the joint-meeting office asks about).
CREATE VIEW IF NOT EXISTS marts.submission_status_latest AS
SELECT * FROM marts.submissions
WHERE month = (SELECT max(month) FROM marts.submissions);
