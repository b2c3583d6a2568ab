//! QuickBooks Online Accounting API v3: a typed client and the sync connector for Customer,
//! Item and Invoice.
//!
//! * [`client`]: query (`STARTPOSITION`/`MAXRESULTS`), CDC, batch with `requestid`, company
//!   info; `minorversion` and `Accept: application/json` on every call; Intuit's per-company
//!   limits (500 requests/min, 10 concurrent, 40 batch requests/min).
//! * [`auth`]: the configured access token, refreshed through OAuth 2.0 with the rotating
//!   refresh token persisted in the platform's credential store.
//! * [`entity`]: records with dotted field names (`PrimaryEmailAddr.Address`), as in
//!   Intuit's XSD, and DisplayName derivation and disambiguation.
//! * [`settings`]: `QUICKBOOKS_*` settings.
//! * [`connector`]: the sync connector ([`FACTORY`], `connector: quickbooks`).

pub mod auth;
pub mod client;
pub mod connector;
pub mod entity;
mod error;
pub mod settings;

pub use client::{ClientOptions, Limits, QuickBooksClient};
pub use connector::{FACTORY, QuickBooksConnector};
pub use entity::Entity;
pub use error::{
    CODE_DUPLICATE_NAME, CODE_OBJECT_NOT_FOUND, CODE_STALE_OBJECT, Fault, FaultError,
    QuickBooksError,
};
pub use settings::QuickBooksSettings;

/// Every connector this crate provides (one line in the binary's list).
pub const FACTORIES: &[syncctl_core::ConnectorFactory] = &[FACTORY];

/// The most operations one batch request may carry.
pub const MAX_BATCH: usize = 30;
/// The most objects one query page returns (`MAXRESULTS`).
pub const MAX_PAGE: usize = 1000;
