//! Stateful fake of a Slack incoming webhook (`POST /services/T…/B…/SECRET`).
//!
//! What it models, because syncctl depends on it:
//! * only the one configured path is a webhook: any other answers `404 no_service`
//!   (a revoked or mistyped URL);
//! * the body must be JSON (`400 invalid_payload`) with `text` or `blocks`
//!   (`400 no_text`); blocks are checked against the Block Kit limits syncctl must respect
//!   (at most 50 blocks; header plain_text ≤ 150 characters; section text ≤ 3000, at most 10
//!   fields of ≤ 2000; context ≤ 10 elements; buttons ≤ 75 characters of text with an
//!   http(s) URL) and refused with `400 invalid_blocks`;
//! * accepted messages answer `200 ok` as `text/plain` and are kept in order;
//! * 429 with `Retry-After` and 5xx come from [`crate::FakeServer`] fault injection.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use crate::services::ServiceEntry;

/// The webhook path the demo router accepts.
pub const DEMO_WEBHOOK_PATH: &str = "/services/T0000DEMO/B0000DEMO/demo-webhook-secret";

/// A Slack incoming webhook with one valid path.
#[derive(Clone, Default)]
pub struct SlackFake {
    path: String,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl SlackFake {
    /// A webhook answering at `path` (e.g. `/services/T1/B1/secret`).
    #[must_use]
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            messages: Arc::default(),
        }
    }

    /// The messages accepted so far.
    #[must_use]
    pub fn messages(&self) -> Vec<Value> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/services/{*rest}", post(receive))
            .with_state(self.clone())
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "text/plain")], body).into_response()
}

async fn receive(State(fake): State<SlackFake>, Path(rest): Path<String>, body: Bytes) -> Response {
    if format!("/services/{rest}") != fake.path {
        return plain(StatusCode::NOT_FOUND, "no_service");
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return plain(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let has_text = msg
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let blocks = msg.get("blocks").and_then(Value::as_array);
    if !has_text && blocks.is_none_or(Vec::is_empty) {
        return plain(StatusCode::BAD_REQUEST, "no_text");
    }
    if let Some(blocks) = blocks
        && !blocks_valid(blocks)
    {
        return plain(StatusCode::BAD_REQUEST, "invalid_blocks");
    }
    fake.messages
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(msg);
    plain(StatusCode::OK, "ok")
}

fn text_of(obj: &Value, kind: &str, max: usize) -> bool {
    obj.get("type").and_then(Value::as_str) == Some(kind)
        && obj
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty() && t.chars().count() <= max)
}

fn any_text(obj: &Value, max: usize) -> bool {
    text_of(obj, "mrkdwn", max) || text_of(obj, "plain_text", max)
}

fn blocks_valid(blocks: &[Value]) -> bool {
    blocks.len() <= 50
        && blocks
            .iter()
            .all(|b| match b.get("type").and_then(Value::as_str) {
                Some("header") => b.get("text").is_some_and(|t| text_of(t, "plain_text", 150)),
                Some("section") => {
                    let text_ok = b.get("text").is_none_or(|t| any_text(t, 3000));
                    let fields = b.get("fields").and_then(Value::as_array);
                    let fields_ok =
                        fields.is_none_or(|f| f.len() <= 10 && f.iter().all(|x| any_text(x, 2000)));
                    text_ok && fields_ok && (b.get("text").is_some() || fields.is_some())
                }
                Some("context") => b
                    .get("elements")
                    .and_then(Value::as_array)
                    .is_some_and(|e| {
                        !e.is_empty() && e.len() <= 10 && e.iter().all(|x| any_text(x, 3000))
                    }),
                Some("actions") => b
                    .get("elements")
                    .and_then(Value::as_array)
                    .is_some_and(|e| {
                        !e.is_empty()
                            && e.len() <= 25
                            && e.iter().all(|x| {
                                x.get("type").and_then(Value::as_str) == Some("button")
                                    && x.get("text").is_some_and(|t| text_of(t, "plain_text", 75))
                                    && x.get("url").and_then(Value::as_str).is_none_or(|u| {
                                        (u.starts_with("https://") || u.starts_with("http://"))
                                            && u.len() <= 3000
                                    })
                            })
                    }),
                Some("divider") => true,
                _ => false,
            })
}

fn demo_router() -> Router {
    SlackFake::new(DEMO_WEBHOOK_PATH).router()
}

/// The Slack webhook fake for `syncctl-fakes serve slack`.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "slack",
        about: "Slack incoming webhook (path /services/T0000DEMO/B0000DEMO/demo-webhook-secret)",
        router: demo_router,
    }]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn block_limits_are_enforced() {
        assert!(blocks_valid(&[
            json!({"type": "header", "text": {"type": "plain_text", "text": "x"}})
        ]));
        assert!(!blocks_valid(&[
            json!({"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}})
        ]));
        let eleven: Vec<Value> = (0..11)
            .map(|_| json!({"type": "mrkdwn", "text": "f"}))
            .collect();
        assert!(!blocks_valid(&[
            json!({"type": "section", "fields": eleven})
        ]));
        assert!(!blocks_valid(&[json!({"type": "mystery"})]));
    }
}
