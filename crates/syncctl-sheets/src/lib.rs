//! Google Sheets: a spreadsheet tab as a first-class side of a sync.
//!
//! * [`auth`]: service-account JWT assertions exchanged for access tokens (scope
//!   `spreadsheets`), cached and renewed before expiry.
//! * [`client`]: the Sheets v4 calls syncctl makes, typed (`values.get`, `values.batchGet`,
//!   `values.batchUpdate` with `RAW` input, `spreadsheets.get`, `appendDimension`).
//! * [`connector`]: the `google_sheets` connector (see its docs for the row-identity and
//!   write-planning rules); [`FACTORY`] is its registry entry.
//! * [`value`]: serial dates and the cell-size limit; [`a1`]: A1 notation; [`table`]: a tab
//!   parsed into keyed records.
//!
//! Environment: `GOOGLE_SHEETS_CREDENTIALS_JSON` (key JSON or a path to it),
//! `GOOGLE_SHEETS_SPREADSHEET_ID`, `GOOGLE_OAUTH_TOKEN_URL` (default: the key's `token_uri`),
//! `GOOGLE_SHEETS_BASE_URL` (default `https://sheets.googleapis.com`).

pub mod a1;
pub mod auth;
pub mod client;
pub mod connector;
mod error;
pub mod settings;
pub mod table;
pub mod value;

pub use connector::{FACTORY, GoogleSheets};
pub use error::{KIND, SheetsError};

/// Every connector this crate provides (one line in the binary's connector list).
pub const FACTORIES: &[syncctl_core::ConnectorFactory] = &[FACTORY];
