//! The JavaScript client served at `/hubbub.js`: one dependency-free ES module that speaks
//! the client protocol for browsers and Node.
//!
//! It connects to `/ws`, turns requests into Promises (by `ref`), reconnects with
//! exponential backoff and jitter (not after close code 4000 or 1008), rejoins its rooms
//! after a reconnect (with `since` when the room's messages carry offsets), sends
//! `{"type":"ping"}` heartbeats, and reports missed offsets as `gap` events. The file's
//! header is its manual; the demo page ([`crate::demo`]) is built on it.

/// The client's source, served at `/hubbub.js` with [`SCRIPT_CONTENT_TYPE`].
pub const SCRIPT: &str = include_str!("hubbub.js");

/// The `Content-Type` to serve [`SCRIPT`] with.
pub const SCRIPT_CONTENT_TYPE: &str = "text/javascript; charset=utf-8";

/// The `Cache-Control` to serve [`SCRIPT`] with: cacheable, and fresh again soon after an
/// upgrade of the node.
pub const SCRIPT_CACHE_CONTROL: &str = "public, max-age=300";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_is_one_module_with_no_imports() {
        assert!(SCRIPT.contains("export function connect("));
        assert!(SCRIPT.contains("export class Client"));
        assert!(
            !SCRIPT.contains("\nimport "),
            "the client depends on nothing"
        );
        assert!(!SCRIPT.contains("require("));
        assert!(SCRIPT.len() < 32 * 1024, "{} bytes", SCRIPT.len());
    }

    #[test]
    fn script_speaks_the_protocol() {
        for needle in [
            r#"type: "join""#,
            r#"type: "leave""#,
            r#"type: "publish""#,
            r#"type: "emit""#,
            r#"type: "broadcast""#,
            r#"type: "ping""#,
            "ref = ++this.#ref",
            r#"case "welcome""#,
            r#"case "ack""#,
            r#"case "error""#,
            r#"case "joined""#,
            r#"case "presence""#,
            "frame.since = { offset: r.pos.offset, epoch: r.pos.epoch }",
            "[4000, 4003, 1008]",
            r#"searchParams.set("token""#,
        ] {
            assert!(SCRIPT.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn script_never_evaluates_data() {
        for banned in ["eval(", "new Function", "innerHTML", "document."] {
            assert!(!SCRIPT.contains(banned), "{banned}");
        }
    }
}
