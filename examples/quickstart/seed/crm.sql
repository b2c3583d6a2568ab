-- The quickstart "CRM": the SQL that built seed/crm.db (a test rebuilds it and compares).
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    given_name  VARCHAR(100),
    family_name VARCHAR(100),
    phone       TEXT,
    company     TEXT,
    stage       TEXT NOT NULL DEFAULT 'lead',
    updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO customers (email, given_name, family_name, phone, company, stage, updated_at) VALUES
    ('ada@example.com', 'Ada', 'Lovelace', '+442079460018', 'Analytical Engines', 'customer', '2026-01-05 09:00:00'),
    ('linus@example.com', 'Linus', 'Torvalds', '+35891234567', 'Linux Foundation', 'lead', '2026-01-06 10:30:00'),
    ('margaret@example.com', 'Margaret', 'Hamilton', '+16175550123', 'MIT', 'customer', '2026-01-07 14:15:00');
