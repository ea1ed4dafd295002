//! The Pusher Channels protocol: app flags, and (below) the protocol at `/app/{key}` spoken
//! by a tungstenite client to the real binary.

use std::process::Command;

use hubbub_tests::hubbub_bin;

/// Runs `hubbub serve ARGS` with `env` set; the node must refuse to start with exit 2.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(hubbub_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hubbub");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn bad_pusher_apps_stop_the_node_naming_the_flag() {
    let e = refused(&["--pusher-app", "1:key:short"], &[]);
    assert!(e.contains("--pusher-app") && e.contains("16 bytes"), "{e}");
    assert!(!e.contains("short"), "the secret is not shown: {e}");
    let e = refused(&["--pusher-app", "nocolons"], &[]);
    assert!(
        e.contains("--pusher-app") && e.contains("ID:KEY:SECRET"),
        "{e}"
    );
    let e = refused(
        &[],
        &[(
            "HUBBUB_PUSHER_APP",
            "1:k1:0123456789abcdef,1:k2:0123456789abcdef",
        )],
    );
    assert!(e.contains("--pusher-app") && e.contains("two apps"), "{e}");
}
