//! Stateful fakes of the vendor APIs, one module per vendor.

pub mod airbyte;
pub mod databricks;
pub mod hubspot;
pub mod quickbooks;
pub mod sheets;
pub mod slack;
pub mod snowflake;
