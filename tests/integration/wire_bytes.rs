//! Byte-level proof that our encoders write the fields the Nim peers require even when they are
//! empty or zero, and that decoding stays lenient when peers leave them out.

use prost::Message;
use wakurln::{
    message::WakuMessage,
    proto::{filter, lightpush, lightpush_v2, message, metadata, peer_exchange, rln, store},
};

/// `/a/1/b/c` as a length-delimited string body.
const TOPIC: [u8; 9] = [0x08, b'/', b'a', b'/', b'1', b'/', b'b', b'/', b'c'];

/// The smallest valid message: empty payload, content topic `/a/1/b/c`.
fn empty_message() -> message::WakuMessage {
    message::WakuMessage {
        content_topic: "/a/1/b/c".into(),
        ..Default::default()
    }
}

fn empty_message_bytes() -> Vec<u8> {
    let mut bytes = vec![0x0a, 0x00, 0x12];
    bytes.extend(TOPIC);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[test]
fn waku_message_writes_empty_payload() {
    assert_eq!(
        hex(&empty_message().encode_to_vec()),
        hex(&empty_message_bytes())
    );
}

#[test]
fn domain_message_writes_required_and_only_set_optional_fields() {
    let msg = WakuMessage::builder("/a/1/b/c".parse().unwrap(), Vec::new())
        .build()
        .unwrap();
    assert_eq!(hex(&msg.encode()), hex(&empty_message_bytes()));

    let msg = WakuMessage::builder("/a/1/b/c".parse().unwrap(), vec![0x01])
        .timestamp(1_700_000_000_000_000_000)
        .meta(Vec::new())
        .ephemeral(true)
        .build()
        .unwrap();
    let mut expected = vec![0x0a, 0x01, 0x01, 0x12];
    expected.extend(TOPIC);
    // field 10 sint64 (zigzag), field 11 empty meta, field 31 bool.
    expected.push(0x50);
    let mut zigzag = 2 * 1_700_000_000_000_000_000u64;
    while zigzag >= 0x80 {
        expected.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    expected.push(zigzag as u8);
    expected.extend([0x5a, 0x00, 0xf8, 0x01, 0x01]);
    assert_eq!(hex(&msg.encode()), hex(&expected));
}

#[test]
fn waku_message_without_payload_field_still_decodes() {
    let mut bytes = vec![0x12];
    bytes.extend(TOPIC);
    let msg = WakuMessage::decode(&bytes).unwrap();
    assert!(msg.payload().is_empty());
    assert_eq!(msg.content_topic().as_str(), "/a/1/b/c");
}

#[test]
fn rate_limit_proof_writes_every_field() {
    let proof = rln::RateLimitProof::default();
    assert_eq!(hex(&proof.encode_to_vec()), "0a0012001a0022002a0032003a00");
}

#[test]
fn filter_ping_writes_request_id_and_type_zero() {
    let ping = filter::FilterSubscribeRequest {
        request_id: String::new(),
        filter_subscribe_type: filter::filter_subscribe_request::FilterSubscribeType::SubscriberPing
            as i32,
        pubsub_topic: None,
        content_topics: vec![],
    };
    assert_eq!(hex(&ping.encode_to_vec()), "0a001000");
}

#[test]
fn filter_response_and_push_write_required_fields() {
    let response = filter::FilterSubscribeResponse {
        request_id: String::new(),
        status_code: 0,
        status_desc: None,
    };
    assert_eq!(hex(&response.encode_to_vec()), "0a005000");

    let push = filter::MessagePush {
        waku_message: empty_message(),
        pubsub_topic: String::new(),
    };
    let mut expected = vec![0x0a, 12];
    expected.extend(empty_message_bytes());
    expected.extend([0x12, 0x00]);
    assert_eq!(hex(&push.encode_to_vec()), hex(&expected));
}

#[test]
fn store_request_and_response_write_required_fields() {
    let request = store::StoreQueryRequest::default();
    assert_eq!(hex(&request.encode_to_vec()), "0a001000");
    let response = store::StoreQueryResponse {
        status_code: 200,
        ..Default::default()
    };
    assert_eq!(hex(&response.encode_to_vec()), "0a0050c801");
}

#[test]
fn lightpush_v3_writes_required_fields() {
    let request = lightpush::LightpushRequest {
        request_id: String::new(),
        pubsub_topic: None,
        message: empty_message(),
    };
    let mut expected = vec![0x0a, 0x00, 0xaa, 0x01, 12];
    expected.extend(empty_message_bytes());
    assert_eq!(hex(&request.encode_to_vec()), hex(&expected));

    let response = lightpush::LightpushResponse {
        request_id: String::new(),
        status_code: 0,
        status_desc: None,
        relay_peer_count: Some(0),
    };
    assert_eq!(hex(&response.encode_to_vec()), "0a0050006000");
}

#[test]
fn lightpush_v2_writes_is_success_false() {
    let rpc = lightpush_v2::PushRpc {
        request_id: String::new(),
        request: None,
        response: Some(lightpush_v2::PushResponse {
            is_success: false,
            info: None,
        }),
    };
    assert_eq!(hex(&rpc.encode_to_vec()), "0a001a020800");
}

#[test]
fn peer_exchange_always_writes_query() {
    let rpc = peer_exchange::PeerExchangeRpc {
        query: peer_exchange::PeerExchangeQuery::default(),
        response: Some(peer_exchange::PeerExchangeResponse {
            peer_infos: vec![],
            status_code: 200,
            status_desc: None,
        }),
    };
    assert_eq!(hex(&rpc.encode_to_vec()), "0a00120350c801");
}

#[test]
fn metadata_writes_shards_unpacked_and_packed() {
    let request = metadata::WakuMetadataRequest {
        cluster_id: Some(1),
        shards: vec![3, 5],
        shards_packed: vec![3, 5],
    };
    assert_eq!(hex(&request.encode_to_vec()), "0801100310051a020305");
    // A peer that packs field 2 is read the same.
    let packed =
        metadata::WakuMetadataResponse::decode(&[0x08, 0x01, 0x12, 0x02, 0x03, 0x05][..]).unwrap();
    assert_eq!(packed.shards, vec![3, 5]);
}
