//! Database and file connectors: PostgreSQL, MySQL/MariaDB, SQLite and CSV.
