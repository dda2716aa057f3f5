//! Integration tests: in-process servers on 127.0.0.1:0 driven over HTTP with reqwest.

mod common;
mod device_api;
mod files;
mod releases;
mod roles;
mod tuf;
