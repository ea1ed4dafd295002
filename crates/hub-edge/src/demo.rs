//! The demo page served at `/`: a small chat on top of the client protocol.
//!
//! One self-contained HTML document (inline CSS and JavaScript, nothing fetched from
//! elsewhere). A visitor picks a name and a room; the page connects to `/ws?id=NAME` on the
//! same host (`wss:` when served over HTTPS, and passing on a `?token=` from its own URL),
//! joins the room, publishes `{"text":..,"name":..}` messages and shows what arrives. It
//! reconnects with backoff and rejoins, except after close code 4000 (replaced) or 1008
//! (refused). User text is only ever rendered with `textContent`.

/// The demo page's HTML, served at `/` with `Content-Type: text/html; charset=utf-8`.
pub const DEMO_PAGE: &str = include_str!("demo.html");

/// The `Content-Type` to serve [`DEMO_PAGE`] with.
pub const DEMO_CONTENT_TYPE: &str = "text/html; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_small_and_self_contained() {
        assert!(DEMO_PAGE.len() < 10 * 1024, "{} bytes", DEMO_PAGE.len());
        assert!(DEMO_PAGE.starts_with("<!doctype html>"));
        let lower = DEMO_PAGE.to_ascii_lowercase();
        for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!lower.contains(external), "external resource: {external}");
        }
    }

    #[test]
    fn page_speaks_the_protocol() {
        for needle in [
            "location.host",
            r#""wss:""#,
            "/ws?",
            r#"type: "join""#,
            r#"type: "leave""#,
            r#"type: "publish""#,
            "ref = ++ref",
            r#""welcome""#,
            r#""message""#,
            r#""error""#,
            "4000",
            "setTimeout(connect",
        ] {
            assert!(DEMO_PAGE.contains(needle), "missing {needle}");
        }
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
