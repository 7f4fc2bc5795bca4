//! The shared message-hash and autosharding vectors, through the library and the CLI.

use crate::common;

use std::process::Command;

use wakurln::{message::message_hash, topics::ContentTopic};

fn vectors(file: &str) -> Vec<serde_json::Value> {
    let json = common::shared_json(file);
    let list = json["vectors"]
        .as_array()
        .expect("a `vectors` array")
        .clone();
    assert!(!list.is_empty(), "{file} holds no vectors");
    list
}

fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} missing: {v}"))
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("vector field {key} missing: {v}"))
}

#[test]
fn message_hash_vectors() {
    for v in vectors("testdata/message_hash_vectors.json") {
        let payload = hex::decode(s(&v, "payload_hex")).unwrap();
        let meta = hex::decode(s(&v, "meta_hex")).unwrap();
        let ts = i64::try_from(u(&v, "timestamp_ns")).unwrap();
        let hash = message_hash(
            s(&v, "pubsub_topic"),
            &payload,
            s(&v, "content_topic"),
            (!meta.is_empty()).then_some(meta.as_slice()),
            Some(ts),
        );
        assert_eq!(
            hash.to_string(),
            s(&v, "expected_hash_hex"),
            "vector {}",
            s(&v, "name")
        );
    }
}

#[test]
fn message_hash_vectors_through_the_cli() {
    for v in vectors("testdata/message_hash_vectors.json") {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakurln"));
        cmd.args(["message", "hash", "--pubsub-topic", s(&v, "pubsub_topic")])
            .args(["--content-topic", s(&v, "content_topic")])
            .args(["--payload-hex", s(&v, "payload_hex")])
            .args(["--timestamp", &u(&v, "timestamp_ns").to_string()]);
        if !s(&v, "meta_hex").is_empty() {
            cmd.args(["--meta-hex", s(&v, "meta_hex")]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", s(&v, "expected_hash_hex")),
            "vector {}",
            s(&v, "name")
        );
    }
}

#[test]
fn autoshard_vectors() {
    for v in vectors("testdata/autoshard_vectors.json") {
        let shards = u16::try_from(u(&v, "shards")).unwrap();
        let expected = u16::try_from(u(&v, "expected_shard")).unwrap();
        for form in ["/{a}/{v}/name/proto", "/0/{a}/{v}/name/proto"] {
            let raw = form
                .replace("{a}", s(&v, "application"))
                .replace("{v}", s(&v, "version"));
            let topic: ContentTopic = raw.parse().unwrap();
            assert_eq!(
                topic.shard_index(shards).unwrap(),
                expected,
                "{raw} over {shards}"
            );
        }
    }
}

#[test]
fn autoshard_vectors_through_the_cli() {
    for v in vectors("testdata/autoshard_vectors.json") {
        let topic = format!("/{}/{}/chat/proto", s(&v, "application"), s(&v, "version"));
        let out = Command::new(env!("CARGO_BIN_EXE_wakurln"))
            .args(["topic", "shard", &topic, "--cluster", "42"])
            .args(["--shards", &u(&v, "shards").to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("/waku/2/rs/42/{}\n", u(&v, "expected_shard"))
        );
    }
}
