//! The CLI as users and scripts meet it: output on stdout, one-line errors, exit codes.

use std::{
    ffi::OsStr,
    fmt::Debug,
    process::{Command, Output},
};

fn wakurln<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wakurln"))
        .args(args)
        .output()
        .expect("run wakurln")
}

/// Bad input exits with 2, prints nothing on stdout and exactly one line on stderr.
fn assert_bad_input<S: AsRef<OsStr> + Debug>(args: &[S], mentions: &str) {
    let out = wakurln(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(
        stderr.contains(mentions),
        "{args:?}: {stderr:?} lacks {mentions:?}"
    );
}

/// `message hash` with fixed topics and the given extra arguments.
fn hash_with(extra: &[&str]) -> Vec<String> {
    let base = ["message", "hash", "--pubsub-topic", "/waku/2/rs/1/0"];
    let topic = ["--content-topic", "/a/1/b/proto"];
    base.iter()
        .chain(&topic)
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn bad_input_is_one_line_and_exit_two() {
    assert_bad_input(
        &hash_with(&["--payload-hex", "zz"]),
        "payload is not valid hex",
    );
    assert_bad_input(
        &hash_with(&["--payload-hex", "00", "--meta-hex", &"00".repeat(65)]),
        "meta",
    );
    assert_bad_input(
        &hash_with(&["--payload-hex", "00", "--timestamp", "1700000000"]),
        "seconds",
    );
    assert_bad_input(
        &hash_with(&["--payload-hex", "00", "--timestamp", "x"]),
        "--timestamp",
    );
    assert_bad_input(&hash_with(&[]), "--payload-hex");
    assert_bad_input(
        &[
            "message",
            "hash",
            "--pubsub-topic",
            "/waku/2/rs/1/x",
            "--content-topic",
            "/a/1/b/c",
            "--payload-hex",
            "",
        ],
        "shard",
    );
    assert_bad_input(
        &[
            "message",
            "hash",
            "--pubsub-topic",
            "/waku/2/rs/1/0",
            "--content-topic",
            "a/1/b/c",
            "--payload-hex",
            "",
        ],
        "must start with `/`",
    );
    assert_bad_input(&["topic", "shard", "/a/1/b"], "has 3 parts");
    assert_bad_input(
        &["topic", "shard", "/a/1/b/c", "--shards", "0"],
        "at least 1",
    );
    assert_bad_input(
        &["topic", "shard", "/a/1/b/c", "--cluster", "70000"],
        "--cluster",
    );
    assert_bad_input(&["no-such-command"], "no-such-command");
}

#[test]
fn help_is_available_everywhere() {
    for args in [
        vec!["--help"],
        vec!["message", "--help"],
        vec!["message", "hash", "--help"],
        vec!["topic", "--help"],
        vec!["topic", "shard", "--help"],
    ] {
        let out = wakurln(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn hash_prints_only_the_hash() {
    let out = wakurln(&hash_with(&["--payload-hex", "0x"]));
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.len(), 65);
    assert!(
        stdout
            .trim_end()
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
    );
}

#[test]
fn shard_prints_the_pubsub_topic() {
    let out = wakurln(&[
        "topic",
        "shard",
        "/toychat/2/huilong/proto",
        "--cluster",
        "1",
        "--shards",
        "8",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "/waku/2/rs/1/3\n");
}
