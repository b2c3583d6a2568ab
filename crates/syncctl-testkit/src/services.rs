//! The registry behind `syncctl-fakes serve <service>`: one line per fake service.

use axum::Router;

/// A fake service that can be served as a process.
pub struct ServiceEntry {
    /// The name on the command line.
    pub name: &'static str,
    /// What it fakes.
    pub about: &'static str,
    /// Builds its router with demo data.
    pub router: fn() -> Router,
}

/// Every fake service. Add one line per new fake.
#[must_use]
pub fn registry() -> Vec<ServiceEntry> {
    let mut all = vec![ServiceEntry {
        name: "echo",
        about: "answers every request with what it received (for smoke tests)",
        router: echo_router,
    }];
    all.extend(crate::fakes::airbyte::services());
    all.extend(crate::fakes::databricks::services());
    all.extend(crate::fakes::hubspot::services());
    all.extend(crate::fakes::snowflake::services());
    all.extend(crate::fakes::sheets::services());
    all.extend(crate::fakes::quickbooks::services());
    all.extend(crate::fakes::slack::services());
    all
}

fn echo_router() -> Router {
    use axum::extract::Request;
    Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1024 * 1024)
            .await
            .unwrap_or_default();
        axum::Json(serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "body": String::from_utf8_lossy(&body),
        }))
    })
}
