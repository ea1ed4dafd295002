//! A JWKS URL (`--jwks-url`): fetched at start, then again in the background.
//!
//! Invariants:
//! - A node does not start without a usable key set (the first fetch must succeed).
//! - A failed refresh keeps the keys it had and says so in the log; the next try comes after
//!   the same interval.
//! - A document is read up to [`MAX_JWKS_BYTES`] and within [`FETCH_TIMEOUT`].

use std::time::Duration;

use hub_edge::auth::JwksKeys;

/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: u64 = 1024 * 1024;
/// Time allowed for one fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the JWKS document at `url` (http://; the error is one line naming `--jwks-url`).
pub fn fetch_jwks(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .and_then(|mut response| {
            response
                .body_mut()
                .with_config()
                .limit(MAX_JWKS_BYTES)
                .read_to_string()
        })
        .map_err(|e| format!("--jwks-url: cannot fetch {url}: {e}"))
}

/// Fetches `url` into a new key set, failing if the document has no usable key.
pub fn load_jwks(url: &str) -> Result<JwksKeys, String> {
    let keys = JwksKeys::new();
    let document = fetch_jwks(url)?;
    keys.replace(&document)
        .map_err(|e| format!("--jwks-url: {url}: {e}"))?;
    Ok(keys)
}

/// Refetches `url` into `keys` every `every`, on a thread of its own, for the life of the
/// process.
pub fn refresh_in_background(url: String, keys: JwksKeys, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("hubbub-jwks".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match fetch_jwks(&url).and_then(|document| keys.replace(&document)) {
                Ok(count) => tracing::debug!(keys = count, "JWKS refreshed"),
                Err(e) => tracing::warn!("JWKS refresh failed, keeping the previous keys: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the JWKS refresh thread: {e}");
    }
}
