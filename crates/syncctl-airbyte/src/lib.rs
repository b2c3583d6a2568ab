//! Airbyte client: trigger, poll, attach and cancel connection syncs (config API and public API).
