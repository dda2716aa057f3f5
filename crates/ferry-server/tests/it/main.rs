//! Integration tests: in-process servers on 127.0.0.1:0 driven over HTTP with reqwest.

mod alerts;
mod bad_input;
mod common;
mod dashboard;
mod dashboard_browser;
mod deltas;
mod device_api;
mod files;
mod firmware;
mod metrics;
mod openapi;
mod push;
mod python_tuf_server_interop;
mod releases;
mod rollouts;
mod roles;
mod tuf;
