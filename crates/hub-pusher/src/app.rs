//! Pusher apps: the `id`, `key` and `secret` a Pusher client and server SDK are configured
//! with, the options of each app, and the table of the apps a node serves.
//!
//! Invariants: every app in an [`Apps`] table has a distinct id and a distinct key; ids and
//! keys are 1 to [`MAX_ID_LEN`] bytes of `[A-Za-z0-9_.-]` (so they fit in room names and URL
//! paths without escaping); secrets are at least [`MIN_SECRET_LEN`] bytes, as Pusher's are.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The shortest secret accepted (Pusher's own secrets are 20 bytes).
pub const MIN_SECRET_LEN: usize = 16;

/// The longest app id or key accepted.
pub const MAX_ID_LEN: usize = 64;

/// Presence members allowed per channel unless an app says otherwise (Pusher allows 100).
pub const DEFAULT_MAX_PRESENCE_MEMBERS: usize = 1_000;

/// The app a node on loopback serves when none is configured: soketi's default app, so
/// examples written for soketi work as they are.
pub const DEFAULT_APP: (&str, &str, &str) = ("app-id", "app-key", "app-secret");

/// One Pusher app.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    /// The app id, used in HTTP API paths (`/apps/{id}/...`).
    pub id: String,
    /// The public key clients connect with (`/app/{key}`).
    pub key: String,
    /// The secret that signs channel auth, user auth and HTTP API calls.
    pub secret: String,
    /// Whether clients may send `client-*` events on private and presence channels.
    pub client_events: bool,
    /// Whether subscribers receive `pusher_internal:subscription_count`.
    pub subscription_count: bool,
    /// Whether the app accepts connections (a disabled app's clients are closed with 4003).
    pub enabled: bool,
    /// Connections allowed at once on one node (none: unlimited; over it: 4004).
    pub max_connections: Option<u64>,
    /// Members allowed in one presence channel.
    pub max_presence_members: usize,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("client_events", &self.client_events)
            .field("subscription_count", &self.subscription_count)
            .field("enabled", &self.enabled)
            .field("max_connections", &self.max_connections)
            .field("max_presence_members", &self.max_presence_members)
            .finish()
    }
}

/// A configuration mistake, worded as a one-line error naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The spec is not `ID:KEY:SECRET`.
    #[error("--pusher-app: expected ID:KEY:SECRET, got {0:?}")]
    Shape(String),
    /// An id or key is empty, too long or has other characters than `[A-Za-z0-9_.-]`.
    #[error(
        "--pusher-app: the app {what} {value:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -"
    )]
    BadName {
        /// `id` or `key`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error("--pusher-app: the secret of app {0:?} must be at least 16 bytes")]
    ShortSecret(String),
    /// Two apps share an id or a key.
    #[error("--pusher-app: two apps have the {what} {value:?}")]
    Duplicate {
        /// `id` or `key`.
        what: &'static str,
        /// The shared value.
        value: String,
    },
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl App {
    /// An enabled app with the given credentials and default options (client events off).
    pub fn new(id: &str, key: &str, secret: &str) -> Result<Self, AppError> {
        if !valid_name(id) {
            return Err(AppError::BadName {
                what: "id",
                value: id.to_owned(),
            });
        }
        if !valid_name(key) {
            return Err(AppError::BadName {
                what: "key",
                value: key.to_owned(),
            });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(AppError::ShortSecret(id.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            client_events: false,
            subscription_count: false,
            enabled: true,
            max_connections: None,
            max_presence_members: DEFAULT_MAX_PRESENCE_MEMBERS,
        })
    }

    /// Parses one `--pusher-app` value, `ID:KEY:SECRET` (the secret may itself hold `:`).
    pub fn parse(spec: &str) -> Result<Self, AppError> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(key), Some(secret)) => Self::new(id, key, secret),
            _ => Err(AppError::Shape(redact_spec(spec))),
        }
    }

    /// soketi's default app (`app-id` / `app-key` / `app-secret`), client events enabled as
    /// soketi enables them.
    pub fn soketi_default() -> Self {
        let (id, key, secret) = DEFAULT_APP;
        Self {
            id: id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            client_events: true,
            subscription_count: false,
            enabled: true,
            max_connections: None,
            max_presence_members: DEFAULT_MAX_PRESENCE_MEMBERS,
        }
    }
}

/// A spec shown in an error without what may be its secret.
fn redact_spec(spec: &str) -> String {
    match spec.split_once(':') {
        Some((id, _)) => format!("{id}:…"),
        None => format!("{} bytes with no ':'", spec.len()),
    }
}

/// The apps a node serves, looked up by key (WebSocket clients) and by id (HTTP API).
#[derive(Debug, Clone, Default)]
pub struct Apps {
    apps: Vec<Arc<App>>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

/// What [`Apps::resolve`] decided about apps for a node.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The apps to serve (possibly none).
    pub apps: Apps,
    /// A line to log at start, when the node serves no Pusher app or only the default one.
    pub notice: Option<String>,
}

impl Apps {
    /// A table of `apps`; ids and keys must be distinct.
    pub fn new(apps: Vec<App>) -> Result<Self, AppError> {
        let mut table = Self::default();
        for app in apps {
            if table.by_id.contains_key(&app.id) {
                return Err(AppError::Duplicate {
                    what: "id",
                    value: app.id,
                });
            }
            if table.by_key.contains_key(&app.key) {
                return Err(AppError::Duplicate {
                    what: "key",
                    value: app.key,
                });
            }
            let at = table.apps.len();
            table.by_id.insert(app.id.clone(), at);
            table.by_key.insert(app.key.clone(), at);
            table.apps.push(Arc::new(app));
        }
        Ok(table)
    }

    /// Parses the `--pusher-app` values (each `ID:KEY:SECRET`) and applies
    /// `--pusher-client-events` to all of them.
    pub fn from_specs<S: AsRef<str>>(specs: &[S], client_events: bool) -> Result<Self, AppError> {
        let apps = specs
            .iter()
            .map(|s| {
                App::parse(s.as_ref()).map(|mut app| {
                    app.client_events = client_events;
                    app
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(apps)
    }

    /// The apps to serve given the configured ones and whether the client listener is on
    /// loopback: configured apps as they are; none on loopback: soketi's default app; none
    /// beyond loopback: no app, and a notice naming the flag to set.
    pub fn resolve(self, listener_on_loopback: bool) -> Resolved {
        if !self.is_empty() {
            return Resolved {
                apps: self,
                notice: None,
            };
        }
        if listener_on_loopback {
            let (id, key, _) = DEFAULT_APP;
            let apps = Self::new(vec![App::soketi_default()]).unwrap_or_default();
            Resolved {
                apps,
                notice: Some(format!(
                    "Pusher: serving the default app (id {id}, key {key}) because the listener is on loopback and no --pusher-app is set"
                )),
            }
        } else {
            Resolved {
                apps: self,
                notice: Some(
                    "Pusher: no app configured, so /app/{key} and /apps/{id} are refused; set --pusher-app ID:KEY:SECRET (HUBBUB_PUSHER_APP) to serve Pusher clients".into(),
                ),
            }
        }
    }

    /// The app whose key is `key`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).and_then(|&i| self.apps.get(i))
    }

    /// The app whose id is `id`.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id).and_then(|&i| self.apps.get(i))
    }

    /// Every app, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.iter()
    }

    /// How many apps the table holds.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether the table holds no app.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_look_up() {
        let apps = Apps::from_specs(
            &["1:k1:0123456789abcdef", "two:k-2:s:with:colons:long"],
            true,
        )
        .expect("valid");
        assert_eq!(apps.len(), 2);
        let a = apps.by_key("k1").expect("by key");
        assert_eq!(
            (a.id.as_str(), a.secret.as_str()),
            ("1", "0123456789abcdef")
        );
        assert!(a.client_events);
        assert_eq!(
            apps.by_id("two").expect("by id").secret,
            "s:with:colons:long"
        );
        assert!(apps.by_key("1").is_none() && apps.by_id("k1").is_none());
    }

    #[test]
    fn bad_specs_name_the_flag() {
        for (spec, part) in [
            ("justone", "expected ID:KEY:SECRET"),
            ("a:b", "expected ID:KEY:SECRET"),
            ("a:b:short", "at least 16 bytes"),
            (":b:0123456789abcdef", "app id"),
            ("a:b c:0123456789abcdef", "app key"),
            ("a/1:b:0123456789abcdef", "app id"),
        ] {
            let e = App::parse(spec).expect_err(spec).to_string();
            assert!(e.starts_with("--pusher-app: "), "{e}");
            assert!(e.contains(part), "{spec}: {e}");
            assert!(!e.contains("short\""), "{e}");
        }
        let dup = Apps::from_specs(&["a:k:0123456789abcdef", "a:j:0123456789abcdef"], false);
        assert!(dup.expect_err("dup id").to_string().contains("two apps"));
        let dup = Apps::from_specs(&["a:k:0123456789abcdef", "b:k:0123456789abcdef"], false);
        assert!(dup.expect_err("dup key").to_string().contains("key"));
    }

    #[test]
    fn secrets_never_show() {
        let app = App::parse("a:k:0123456789abcdefSECRET").expect("valid");
        assert!(!format!("{app:?}").contains("SECRET"));
        let e = App::parse("0123456789abcdefhiddenvaluenocolons").expect_err("shape");
        assert!(!e.to_string().contains("hiddenvalue"), "{e}");
    }

    #[test]
    fn the_default_app_is_for_loopback_only() {
        let r = Apps::default().resolve(true);
        let app = r.apps.by_key("app-key").expect("default app");
        assert_eq!(
            (app.id.as_str(), app.secret.as_str()),
            ("app-id", "app-secret")
        );
        assert!(r.notice.is_some());
        let r = Apps::default().resolve(false);
        assert!(r.apps.is_empty());
        assert!(r.notice.expect("notice").contains("--pusher-app"));
        let given = Apps::from_specs(&["a:k:0123456789abcdef"], false).expect("valid");
        let r = given.resolve(false);
        assert_eq!(r.apps.len(), 1);
        assert!(r.notice.is_none());
    }
}
