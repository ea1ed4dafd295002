//! Pusher's HTTP API (`/apps/{id}/...`): request signatures, routing and parsing, answers.
//!
//! Pure functions: the runtime reads the request, finds the app, and calls in here with the
//! current Unix time.

pub mod signature;

pub use signature::{verify, Query, SignatureError, SignedRequest};
