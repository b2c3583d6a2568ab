//! Alerts and metrics for syncctl runs.
//!
//! The binary turns every run's `syncctl.result/v1` into an [`Alert`] (Slack Block Kit message
//! and a plain-text + HTML email per recipient) and a [`RunMetrics`] set (pushed to a
//! Prometheus Pushgateway and/or written as a node_exporter textfile), and hands both to
//! [`deliver`], which sends everything concurrently under one deadline. Delivery never fails a
//! run: every problem comes back as a warning.
//!
//! Settings come from a lookup over the seed's variable names (`ENABLE_SLACK`,
//! `SLACK_WEBHOOK_URL`, `ENABLE_EMAIL`, `ALERT_EMAILS`, `SMTP_*`, `PROMETHEUS_PUSHGATEWAY_URL`,
//! `SYNCCTL_NOTIFY`); see [`settings`].

mod alert;
mod deliver;
mod email;
mod error;
mod metrics;
mod pushgateway;
pub mod settings;
mod slack;

pub use alert::{Alert, Link};
pub use deliver::{Delivery, DeliveryReport, deliver};
pub use email::{EmailSender, render_html, render_text};
pub use error::NotifyError;
pub use metrics::{LAST_SUCCESS, RunMetrics, Sample, carry_last_success, write_textfile};
pub use pushgateway::{Pushgateway, grouping_path};
pub use settings::{
    AlertSettings, EmailSettings, MetricsSettings, NotifyPolicy, SlackSettings, SmtpTls,
};
pub use slack::{SlackSender, block_kit};
