//! The Postgres wire-protocol server (sessions, pull and push queries,
//! SQLSTATE errors) lives here. It is built by its own issue on top of
//! [`crate::Engine`]; nothing in this folder is compiled into the engine yet.
