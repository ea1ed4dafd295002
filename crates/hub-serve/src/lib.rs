//! # hub-serve — what every Hubbub runtime shares
//!
//! The runtime-neutral half of a node: its [`Settings`], the [`Gate`] that decides what each
//! HTTP request becomes (upgrade, endpoint, API call, refusal), the mapping of producer API
//! calls onto the router ([`api`]), per-IP connection limits ([`IpLimiter`]) and TLS material
//! ([`tls`]: certificates reloaded while the node runs). The tokio
//! and smol adapters only move bytes and run tasks around these.

pub mod api;
pub mod gate;
pub mod jwks;
pub mod limiter;
pub mod pusher_api;
pub mod secret;
pub mod settings;
pub mod tls;
pub mod webhooks;

pub use gate::{Decision, Gate};
pub use limiter::IpLimiter;
pub use secret::random_seed;
pub use settings::{BusSpec, RegistrySpec, RuntimeKind, Settings};
pub use tls::{CertStore, TlsFiles};
