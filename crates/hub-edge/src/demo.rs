//! The demo page served at `/`: a small chat on top of the client protocol.
//!
//! One HTML document with inline CSS and an inline module script; the only thing it loads is
//! the node's own JavaScript client, `/hubbub.js` ([`crate::script`]), from the same host. A
//! visitor picks a name and a room; the page connects to `/ws?id=NAME` (`wss:` when served
//! over HTTPS, passing on a `?token=` from its own URL), joins the room, publishes
//! `{"text":..,"name":..}` messages and shows what arrives. The client reconnects with
//! backoff and rejoins, except after close code 4000 (replaced) or 1008 (refused); the page
//! shows the reconnecting state, missed messages (`gap`) and recovered rooms. User text is
//! only ever rendered with `textContent`.

/// The demo page's HTML, served at `/` with `Content-Type: text/html; charset=utf-8`.
pub const DEMO_PAGE: &str = include_str!("demo.html");

/// The `Content-Type` to serve [`DEMO_PAGE`] with.
pub const DEMO_CONTENT_TYPE: &str = "text/html; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_small_and_self_contained() {
        assert!(DEMO_PAGE.len() < 8 * 1024, "{} bytes", DEMO_PAGE.len());
        assert!(DEMO_PAGE.starts_with("<!doctype html>"));
        let lower = DEMO_PAGE.to_ascii_lowercase();
        for external in [
            "http://", "https://", "src=", "<link", "@import", "url(", "//cdn",
        ] {
            assert!(!lower.contains(external), "external resource: {external}");
        }
        // The one import is the node's own client, by an absolute path on the same host.
        assert_eq!(lower.matches("import ").count(), 1);
        assert!(DEMO_PAGE.contains(r#"import { connect } from "/hubbub.js";"#));
        assert!(DEMO_PAGE.contains(r#"<script type="module">"#));
    }

    #[test]
    fn page_uses_the_client() {
        for needle in [
            r#"connect("/ws", { id: me, token })"#,
            r#"location.search).get("token")"#,
            "hub.join(r)",
            "hub.leave(r)",
            "hub.publish(room,",
            "hub.close()",
            r#"hub.on("welcome""#,
            r#"hub.on("message""#,
            r#"hub.on("error""#,
            r#"hub.on("gap""#,
            r#"hub.on("reconnecting""#,
            "reconnecting in ",
            "c.code === 4000",
            "c.code === 1008",
        ] {
            assert!(DEMO_PAGE.contains(needle), "missing {needle}");
        }
        // No socket code of its own: the client does that.
        assert!(!DEMO_PAGE.contains("new WebSocket"));
        assert!(!DEMO_PAGE.contains("setTimeout"));
    }

    #[test]
    fn page_never_renders_html_from_data() {
        assert!(!DEMO_PAGE.contains("innerHTML"));
        assert!(!DEMO_PAGE.contains("outerHTML"));
        assert!(!DEMO_PAGE.contains("insertAdjacentHTML"));
        assert!(!DEMO_PAGE.contains("document.write"));
        assert!(!DEMO_PAGE.contains("eval("));
        assert!(DEMO_PAGE.contains("textContent"));
    }
}
