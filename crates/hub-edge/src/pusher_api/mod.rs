//! Pusher's HTTP API (`/apps/{id}/...`): request signatures, routing and parsing, answers.
//!
//! Pure functions: the runtime reads the request, finds the app by the id in the path
//! ([`split_app`]; unknown: 404), checks the signature with [`verify`] at the current Unix
//! time (401), parses the call with [`parse`], acts on the [`PusherRequest`] and answers with
//! the bodies of [`answer`] — or with the [`crate::ApiError`]'s status and body.

pub mod answer;
pub mod request;
pub mod signature;
pub mod webhook;

pub use answer::ChannelInfo;
pub use request::{is_pusher_path, parse, split_app, Info, PusherRequest, Trigger};
pub use signature::{verify, Query, SignatureError, SignedRequest};

#[cfg(test)]
mod tests;
