//! The binary's end-to-end tests, as one test binary (one link instead of one per file, as
//! ripgrep and uv do): each module drives the real `syncctl` against the testkit fakes or the
//! local databases. Add new end-to-end tests as a module here, not as a new file in `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod adversarial;
mod airbyte_cli;
mod airbyte_signals;
mod alerts;
mod cli_contract;
mod dbx_commands;
mod dbx_run_now;
mod error_matrix;
mod help_pages;
mod kestra_examples;
mod kestra_sheets;
mod kubernetes_examples;
mod output_text;
mod secret_leak;
mod secret_leak_airbyte;
mod secret_leak_dbx;
mod secret_leak_snowflake;
mod secret_leak_sync;
mod snowflake_contract;
mod snowflake_copy;
mod sync_crash;
mod sync_deals_invoice;
mod sync_first_load_crash;
mod sync_help;
mod sync_hubspot;
mod sync_hubspot_qbo;
mod sync_lock;
mod sync_pg_hubspot;
mod sync_pg_mysql;
mod sync_quickbooks;
mod sync_quickstart;
mod sync_sheets;
mod sync_sheets_hubspot;
mod sync_unreachable;
mod waiting;
