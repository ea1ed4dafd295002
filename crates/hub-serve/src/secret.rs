//! Secrets (JWT secrets, API keys, cluster secrets) given as a value or read from a file, and
//! the node's random seed.
//!
//! Invariants:
//! - A secret is at least [`MIN_SECRET_LEN`] bytes; an empty value counts as given (and is
//!   refused), never as absent.
//! - A file's content is the secret, minus one trailing line break (`echo KEY > file`);
//!   everything else, spaces included, is kept.
//! - Errors are one line naming the flag, and never carry the secret.

use std::path::Path;

use hub_core::Seed;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The secret of `--FLAG VALUE` or `--FLAG-file PATH` (`flag` without dashes, e.g.
/// `"jwt-secret"`): `Ok(None)` when neither is given. Giving both is an error, as is a file that
/// cannot be read.
pub fn resolve_secret(
    flag: &str,
    value: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!(
            "--{flag}-file: give --{flag} or --{flag}-file, not both"
        )),
        (Some(value), None) => Ok(Some(value.to_owned())),
        (None, Some(path)) => read_secret_file(flag, path).map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads a secret file (for `--FLAG-file`); the error names that flag and the path.
pub fn read_secret_file(flag: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--{flag}-file: cannot read {}: {e}", path.display()))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(text.to_owned())
}

/// A node's secret seed: 32 bytes from the operating system's CSPRNG.
pub fn random_seed() -> Result<Seed, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot read random bytes from the operating system: {e}"))?;
    Ok(Seed::new(bytes))
}

/// Checks a configured secret's length; the error names `--FLAG`.
pub fn check_secret(flag: &str, secret: Option<&str>) -> Result<(), String> {
    match secret {
        None => Ok(()),
        Some("") => Err(format!(
            "--{flag}: must not be empty (at least {MIN_SECRET_LEN} bytes; unset it to turn it off)"
        )),
        Some(s) if s.len() < MIN_SECRET_LEN => Err(format!(
            "--{flag}: too short ({} bytes; at least {MIN_SECRET_LEN} are required)",
            s.len()
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("hubbub-secret-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write");
        path
    }

    #[test]
    fn empty_and_short_secrets_are_refused() {
        let empty = check_secret("jwt-secret", Some("")).expect_err("empty");
        assert!(
            empty.starts_with("--jwt-secret: must not be empty"),
            "{empty}"
        );
        let short = check_secret("api-key", Some("k3y")).expect_err("short");
        assert!(
            short.starts_with("--api-key: too short (3 bytes"),
            "{short}"
        );
        assert!(!short.contains("k3y"));
        assert!(check_secret("api-key", Some(&"x".repeat(31))).is_err());
        assert!(check_secret("api-key", Some(&"x".repeat(32))).is_ok());
        assert!(check_secret("api-key", None).is_ok());
    }

    #[test]
    fn files_give_the_secret_without_one_line_break() {
        let key = "k".repeat(40);
        for (name, content) in [
            ("plain", key.clone()),
            ("lf", format!("{key}\n")),
            ("crlf", format!("{key}\r\n")),
        ] {
            let path = temp_file(name, &content);
            let got = resolve_secret("api-key", None, Some(&path)).expect("reads");
            assert_eq!(got.as_deref(), Some(key.as_str()), "{name}");
            let _ = std::fs::remove_file(path);
        }
        let path = temp_file("spaces", " a b \n\n");
        assert_eq!(
            resolve_secret("api-key", None, Some(&path)).expect("reads"),
            Some(" a b \n".to_owned())
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn random_seeds_differ() {
        let a = random_seed().expect("random");
        assert_ne!(a, random_seed().expect("random"));
    }

    #[test]
    fn value_file_and_errors() {
        assert_eq!(resolve_secret("api-key", None, None), Ok(None));
        assert_eq!(
            resolve_secret("api-key", Some("v"), None),
            Ok(Some("v".to_owned()))
        );
        let both = resolve_secret("api-key", Some("v"), Some(Path::new("/x"))).expect_err("both");
        assert!(
            both.starts_with("--api-key-file: give --api-key or"),
            "{both}"
        );
        let missing = resolve_secret("jwt-secret", None, Some(Path::new("/no/such/file")))
            .expect_err("missing");
        assert!(
            missing.starts_with("--jwt-secret-file: cannot read /no/such/file"),
            "{missing}"
        );
        assert_eq!(missing.lines().count(), 1);
    }
}
