-- Marts and case history written by fangpin/linkage.py, fangpin/warnings.py and fangpin/cases.py.
-- Month-partitioned tables carry `month` (text YYYY-MM); a run of month M deletes and re-inserts exactly M's rows.
-- cases.verifications is history (townships' feedback) and is never replaced wholesale.
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS cases;

-- One row per list row (accepted, or quarantined for its ID number): who it was linked to, and by which rule.
CREATE TABLE IF NOT EXISTS marts.person_links (
    month VARCHAR NOT NULL,
    list_key VARCHAR NOT NULL,          -- department.list
    department VARCHAR,
    kind VARCHAR,                       -- risk | eligibility (registry)
    source_file VARCHAR NOT NULL,
    sheet VARCHAR,
    row_number INTEGER,
    id_number VARCHAR,                  -- the roster person's ID when linked, else the list's (normalised or raw)
    list_id_number VARCHAR,             -- the ID as the list gave it (normalised; raw text when it was invalid)
    id_valid BOOLEAN,                   -- false: the row was quarantined for its ID number (probable matching)
    name VARCHAR,                       -- the name as the list gave it
    township VARCHAR,                   -- the list's township, resolved to the roster's name when possible
    village VARCHAR,
    township_raw VARCHAR,
    village_raw VARCHAR,
    detail VARCHAR,                     -- 原因/病种/灾害类型… as the list gave it
    amount DOUBLE,                      -- 金额 as the list gave it
    event_date DATE,
    household_id VARCHAR,               -- NULL when match_rule = 'none'
    roster_month VARCHAR,               -- the roster month linked against (latest roster at or before `month`)
    match_rule VARCHAR NOT NULL,        -- id | probable_name | none
    match_note VARCHAR NOT NULL         -- the rule in words (Chinese), per row
);

-- One row per month x person on a risk list who could not be linked to the roster.
CREATE TABLE IF NOT EXISTS marts.unmatched_persons (
    month VARCHAR NOT NULL,
    id_number VARCHAR,                  -- normalised ID; the raw cell text when the ID was invalid
    id_valid BOOLEAN,
    name VARCHAR,
    sources VARCHAR[],                  -- department.list
    township VARCHAR,                   -- as the list gave it (resolved name when known, else the raw text)
    village VARCHAR,
    details VARCHAR[],                  -- "list_key：detail"
    locations VARCHAR[],                -- "file｜sheet｜第N行" so a clerk can find the row
    reason VARCHAR                      -- why it is unmatched (Chinese)
);

-- One row per month x household warned by at least one risk list (the township's work list).
CREATE TABLE IF NOT EXISTS marts.warning_queue (
    month VARCHAR NOT NULL,
    household_id VARCHAR NOT NULL,
    township VARCHAR,
    village VARCHAR,
    division_code VARCHAR,
    head_name VARCHAR,
    head_id_number VARCHAR,
    household_size INTEGER,
    household_type VARCHAR,             -- 脱贫户 / 一般农户
    monitoring_category VARCHAR,        -- current category in the roster, NULL when not monitored
    members VARCHAR[],                  -- "张三（civil_affairs.dibao：因病）": who triggered the warning and why
    member_ids VARCHAR[],
    risk_types VARCHAR[],               -- A27 labels
    risk_details VARCHAR[],             -- e.g. 因自然灾害-洪涝
    assurance_gaps VARCHAR[],           -- A23-A26: 住房安全, 饮水安全, 义务教育, 基本医疗保险
    sources VARCHAR[],                  -- department.list of the risk lists
    findings VARCHAR[],                 -- eligibility findings, e.g. 名下有机动车（公安局）
    is_monitored BOOLEAN,               -- already a monitoring object and not eliminated: follow-up
    action VARCHAR,                     -- 新识别（入户核实） / 跟踪帮扶（已是监测对象）
    suggested_category VARCHAR,
    a34_per_capita DOUBLE,
    a38_per_capita DOUBLE,
    event_costs DOUBLE,                 -- this month's out-of-pocket medical cost and losses (yuan)
    a38_after_event DOUBLE,             -- (A37 - event_costs) / household size
    monitoring_line DOUBLE,
    base_priority DOUBLE,               -- priority before case escalation (repeat, overdue)
    priority DOUBLE,
    priority_reasons VARCHAR,           -- reasons joined with "；"
    issued_on DATE,
    due_date DATE,                      -- the case's verification deadline
    case_id VARCHAR,
    case_status VARCHAR,                -- 新预警 / 重复预警 / 已逾期
    first_warned_on DATE,
    is_repeat BOOLEAN,
    overdue BOOLEAN,
    match_rule VARCHAR,                 -- 身份证号码一致 / 疑似：姓名+乡镇+村唯一匹配 (both, joined with "；")
    cadre VARCHAR,
    phone VARCHAR
);

-- Verification results returned by townships (入户核实 feedback), read from the filled-in workbooks.
CREATE TABLE IF NOT EXISTS cases.verifications (
    month VARCHAR NOT NULL,             -- the queue month the workbook was issued for
    township VARCHAR,
    household_id VARCHAR,
    case_id VARCHAR,
    result VARCHAR,                     -- 存在风险 / 不存在风险 / 已纳入监测 / 查无此户
    verified_on DATE,
    verifier VARCHAR,
    remarks VARCHAR,
    source_file VARCHAR,
    row_number INTEGER
);

-- For month M: every earlier case still open at the previous month's issue date, and what became of it by M's
-- issue date (verified, rejected by feedback, overdue, pending).
CREATE TABLE IF NOT EXISTS marts.case_status (
    month VARCHAR NOT NULL,
    case_id VARCHAR NOT NULL,
    household_id VARCHAR,
    township VARCHAR,
    village VARCHAR,
    head_name VARCHAR,
    first_month VARCHAR,                -- queue month that opened the case
    last_month VARCHAR,                 -- latest earlier queue month that carried it
    first_warned_on DATE,
    due_date DATE,
    status VARCHAR,                     -- 已核实：存在风险 / 已核实：已纳入监测 / 已排除：不存在风险 / 已排除：查无此户 / 已逾期 / 核实中
    status_group VARCHAR,               -- verified | rejected | overdue | pending
    result VARCHAR,
    verified_on DATE,
    verifier VARCHAR,
    remarks VARCHAR,
    overdue BOOLEAN,
    days_overdue INTEGER,
    warned_again BOOLEAN,               -- the household is in month M's queue again (same case)
    priority DOUBLE,                    -- escalated when overdue
    priority_reasons VARCHAR
);
