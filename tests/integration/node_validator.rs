//! The relay validator on real proofs made with the network's circuit keys: every rejection
//! reason in the reference order, duplicates ignored, double signalling caught with the secret
//! recovered, and a batch that singles out exactly its bad messages.

use crate::common;

use std::{
    str::FromStr,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use wakurln::{
    clock::{ManualClock, now_ns},
    message::WakuMessage,
    relay::pipeline::{Ignored, Rejection, RlnRules, Validator, Verdict},
    rln::{
        field::Fr,
        identity::Identity,
        prover::{MemberInputs, MessageInputs, RlnProver},
        tree::{MerkleTree, RootWindow},
        waku::{Epoch, RlnProofData, external_nullifier, rln_identifier},
    },
    topics::ContentTopic,
};

const PERIOD: u64 = 600;

fn prover() -> &'static RlnProver {
    static PROVER: OnceLock<RlnProver> = OnceLock::new();
    PROVER.get_or_init(|| {
        let dir = common::shared_file("circuits/waku-rln-v2/README.md")
            .parent()
            .unwrap()
            .to_path_buf();
        RlnProver::load(&dir).unwrap()
    })
}

struct Setup {
    tree: MerkleTree,
    member: Identity,
    validator: Validator,
}

fn setup() -> Setup {
    let member = Identity::from_seed(b"validator test member");
    let mut tree = MerkleTree::new();
    tree.set(0, Identity::from_seed(b"someone else").rate_commitment(10))
        .unwrap();
    tree.set(1, member.rate_commitment(10)).unwrap();
    let mut window = RootWindow::new(50);
    window.push(tree.root());
    let validator = Validator::rln(
        RlnRules {
            epoch_period: PERIOD,
            // Wide, so the seconds spent proving on a loaded machine never age the messages
            // out; the timestamp check is exercised with a message an hour old.
            max_clock_drift: Duration::from_secs(300),
        },
        Arc::new(RwLock::new(window)),
    );
    Setup {
        tree,
        member,
        validator,
    }
}

fn message(text: &str, timestamp: i64) -> WakuMessage {
    WakuMessage::builder(
        ContentTopic::from_str("/validator/1/test/proto").unwrap(),
        text.as_bytes().to_vec(),
    )
    .timestamp(timestamp)
    .build()
    .unwrap()
}

/// A proof for `message` by member 1 with message id `id`, for `epoch` (defaults to the
/// message's epoch) and `rln_id`.
fn proved(
    s: &Setup,
    message: WakuMessage,
    id: u64,
    epoch: Option<Epoch>,
    rln_id: Fr,
) -> WakuMessage {
    let path = s.tree.proof(1).unwrap();
    let member = MemberInputs {
        identity_secret: s.member.secret_hash,
        user_message_limit: Fr::from(10u64),
        path_elements: path.elements,
        identity_path_index: path.path_bits(),
    };
    let epoch =
        epoch.unwrap_or_else(|| Epoch::from_timestamp_ns(message.timestamp().unwrap(), PERIOD));
    let inputs = MessageInputs {
        x: message.signal_x(),
        external_nullifier: external_nullifier(epoch, rln_id),
        message_id: Fr::from(id),
    };
    let prepared = prover().prepare(&member).unwrap();
    let proof = prover()
        .prove_prepared(&prepared, inputs, &mut rand::thread_rng())
        .unwrap();
    let data = RlnProofData::from_rln_layout(&proof.to_layout(), epoch, rln_id).unwrap();
    message.with_rate_limit_proof(data.encode()).unwrap()
}

fn check(s: &Setup, m: &WakuMessage) -> Verdict {
    s.validator.validate(&m.encode()).0
}

#[test]
fn every_check_in_order() {
    let s = setup();
    let now = now_ns();
    let rln_id = rln_identifier();

    // Not a WakuMessage at all.
    assert!(matches!(
        s.validator.validate(&[0xff, 0xff, 0xff]).0,
        Verdict::Reject(Rejection::MalformedMessage(_))
    ));
    // No proof.
    assert_eq!(
        check(&s, &message("bare", now)),
        Verdict::Reject(Rejection::MissingProof)
    );
    // Garbage where the proof goes.
    let garbage = message("garbage", now)
        .with_rate_limit_proof(vec![1u8, 2, 3])
        .unwrap();
    assert!(matches!(
        check(&s, &garbage),
        Verdict::Reject(Rejection::MalformedProof(_))
    ));
    // A timestamp an hour in the past (drift 300 s), proved honestly for its own epoch.
    let old = proved(&s, message("old", now - 3_600_000_000_000), 0, None, rln_id);
    assert_eq!(
        check(&s, &old),
        Verdict::Reject(Rejection::TimestampOutOfRange)
    );
    // A proof for the previous epoch attached to a current message.
    let this_epoch = Epoch::from_timestamp_ns(now, PERIOD);
    let stale = proved(
        &s,
        message("stale", now),
        0,
        Some(Epoch(this_epoch.0 - 1)),
        rln_id,
    );
    assert_eq!(check(&s, &stale), Verdict::Reject(Rejection::EpochMismatch));
    // Another application's RLN identifier.
    let other_app = proved(&s, message("other app", now), 0, None, Fr::from(7u64));
    assert_eq!(
        check(&s, &other_app),
        Verdict::Reject(Rejection::WrongRlnIdentifier)
    );
    // A root no one has seen: a member added locally but not in the validator's window.
    let mut other = setup();
    other
        .tree
        .set(2, Identity::from_seed(b"late").rate_commitment(10))
        .unwrap();
    let unknown_root = proved(&other, message("unknown root", now), 0, None, rln_id);
    assert_eq!(
        check(&s, &unknown_root),
        Verdict::Reject(Rejection::UnknownRoot)
    );
    // A valid proof moved to another payload.
    let good = proved(&s, message("good", now), 0, None, rln_id);
    let moved = message("moved", good.timestamp().unwrap())
        .with_rate_limit_proof(good.rate_limit_proof().unwrap().clone())
        .unwrap();
    assert_eq!(check(&s, &moved), Verdict::Reject(Rejection::InvalidProof));
    // The good message, then its copy, then another message with the same id.
    assert_eq!(check(&s, &good), Verdict::Accept);
    assert_eq!(check(&s, &good), Verdict::Ignore(Ignored::Duplicate));
    let again = proved(&s, message("again", now), 0, None, rln_id);
    match check(&s, &again) {
        Verdict::Reject(Rejection::DoubleSignal { secret, commitment }) => {
            assert_eq!(secret, s.member.secret_hash);
            assert_eq!(commitment, s.member.commitment);
        }
        other => panic!("expected double signalling, got {other:?}"),
    }
    // A different message id is fine.
    let next = proved(&s, message("next", now), 1, None, rln_id);
    assert_eq!(check(&s, &next), Verdict::Accept);
}

#[test]
fn a_batch_singles_out_its_bad_messages() {
    let s = setup();
    // Judged at 100 s into an epoch, the messages alternate between that epoch and the
    // previous one (both within the drift): a batch with two external nullifiers.
    let period_ns = i64::try_from(PERIOD).unwrap() * 1_000_000_000;
    let boundary = now_ns() / period_ns * period_ns;
    let now = boundary + 100_000_000_000;
    let mut batch = Vec::new();
    for i in 0..8u64 {
        let sent = if i % 2 == 0 {
            boundary + 50_000_000_000
        } else {
            boundary - 100_000_000_000
        };
        let m = proved(
            &s,
            message(&format!("m{i}"), sent),
            i,
            None,
            rln_identifier(),
        );
        let m = if i == 2 || i == 5 {
            message(&format!("swapped {i}"), m.timestamp().unwrap())
                .with_rate_limit_proof(m.rate_limit_proof().unwrap().clone())
                .unwrap()
        } else {
            m
        };
        batch.push(m.encode());
    }
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let verdicts: Vec<Verdict> = s
        .validator
        .validate_batch_at(&refs, now)
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    for (i, v) in verdicts.iter().enumerate() {
        let expected = if i == 2 || i == 5 {
            Verdict::Reject(Rejection::InvalidProof)
        } else {
            Verdict::Accept
        };
        assert_eq!(*v, expected, "message {i}");
    }
}

#[test]
fn without_rln_only_the_message_is_checked() {
    let v = Validator::without_rln();
    assert_eq!(
        v.validate(&message("plain", now_ns()).encode()).0,
        Verdict::Accept
    );
    assert!(matches!(
        v.validate(b"\x0a").0,
        Verdict::Reject(Rejection::MalformedMessage(_))
    ));
}

/// `message` with its parts rebuilt: another meta, and `proof` as its proof bytes.
fn rebuilt(m: &WakuMessage, payload: &[u8], meta: &[u8], proof: &RlnProofData) -> WakuMessage {
    WakuMessage::builder(m.content_topic().clone(), payload.to_vec())
        .timestamp(m.timestamp().unwrap())
        .meta(meta.to_vec())
        .build()
        .unwrap()
        .with_rate_limit_proof(proof.encode())
        .unwrap()
}

#[test]
fn copies_of_a_seen_share_cost_no_proof_check_however_re_encoded() {
    let s = setup();
    let original = proved(&s, message("seen", now_ns()), 4, None, rln_identifier());
    assert_eq!(check(&s, &original), Verdict::Accept);
    let data = RlnProofData::decode(original.rate_limit_proof().unwrap()).unwrap();
    // Garbage where the curve points were: any proof check would refuse these copies, so a
    // verdict of Duplicate shows none ran.
    let mut broken = data.clone();
    broken.proof = [0xa5; 128];

    let other_meta = rebuilt(&original, b"seen", b"other meta", &broken);
    assert_eq!(check(&s, &other_meta), Verdict::Ignore(Ignored::Duplicate));
    // An unknown protobuf field appended (field 31, varint 1) is another encoding too.
    let mut extra = rebuilt(&original, b"seen", b"", &broken).encode();
    extra.extend_from_slice(&[0xf8, 0x01, 0x01]);
    assert_eq!(
        s.validator.validate(&extra).0,
        Verdict::Ignore(Ignored::Duplicate)
    );
    // The payload changed under the same share: on the sender's line another x needs another
    // y, so no valid proof can carry this; refused before any point is decoded.
    assert_eq!(
        check(&s, &rebuilt(&original, b"changed", b"", &broken)),
        Verdict::Reject(Rejection::InvalidProof)
    );
    // With the original points the verdict is the same: the proof check is not what refuses it.
    assert_eq!(
        check(&s, &rebuilt(&original, b"changed", b"", &data)),
        Verdict::Reject(Rejection::InvalidProof)
    );
}

#[test]
fn nothing_is_judged_before_the_first_sync() {
    let Setup {
        tree,
        member,
        validator,
    } = setup();
    let (validator, synced) = validator.until_synced();
    let s = Setup {
        tree,
        member,
        validator,
    };
    let m = proved(&s, message("early", now_ns()), 0, None, rln_identifier());
    // Not even a valid message is accepted, and an invalid one is not rejected: the roots are
    // not known yet, so no peer may be scored on them.
    assert_eq!(check(&s, &m), Verdict::Ignore(Ignored::NotSynced));
    let unproved = message("no proof", now_ns());
    assert_eq!(check(&s, &unproved), Verdict::Ignore(Ignored::NotSynced));
    synced.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(check(&s, &m), Verdict::Accept);
    assert_eq!(
        check(&s, &unproved),
        Verdict::Reject(Rejection::MissingProof)
    );
}

#[test]
fn the_nodes_own_proofs_pass_its_nullifier_log_before_leaving() {
    let s = setup();
    let now = now_ns();
    let first = proved(&s, message("own one", now), 7, None, rln_identifier());
    assert_eq!(s.validator.record_own(&first, now), Ok(()));
    // The same proof again is harmless (one share); a second message with the same id is not.
    assert_eq!(s.validator.record_own(&first, now), Ok(()));
    let second = proved(&s, message("own two", now), 7, None, rln_identifier());
    assert!(matches!(
        s.validator.record_own(&second, now),
        Err(Verdict::Reject(Rejection::DoubleSignal { .. }))
    ));
    // And a relayed copy of the first is a duplicate for the validator.
    assert_eq!(check(&s, &first), Verdict::Ignore(Ignored::Duplicate));
}

#[test]
fn a_double_signal_straddling_a_restart_is_caught() {
    let dir = std::env::temp_dir().join(format!("wakurln-validator-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nullifiers.sqlite");
    let open = |s: Setup| Setup {
        validator: s
            .validator
            .with_store(wakurln::relay::nullifier_store::NullifierStore::open(&path).unwrap())
            .unwrap(),
        ..s
    };
    let before = open(setup());
    let first = proved(
        &before,
        message("before the restart", now_ns()),
        2,
        None,
        rln_identifier(),
    );
    assert_eq!(check(&before, &first), Verdict::Accept);
    drop(before);

    // A new validator on the same file: the share is still known.
    let after = open(setup());
    assert_eq!(check(&after, &first), Verdict::Ignore(Ignored::Duplicate));
    let second = proved(
        &after,
        message("after the restart", now_ns()),
        2,
        None,
        rln_identifier(),
    );
    match check(&after, &second) {
        Verdict::Reject(Rejection::DoubleSignal { secret, .. }) => {
            assert_eq!(secret, after.member.secret_hash);
        }
        other => panic!("the double signal was missed: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_pipeline_reads_the_clock_it_is_given() {
    let s = setup();
    let now = now_ns();
    let clock = Arc::new(ManualClock::at(now));
    let mut window = RootWindow::new(50);
    window.push(s.tree.root());
    let validator = Validator::rln(
        RlnRules {
            epoch_period: PERIOD,
            max_clock_drift: Duration::from_secs(300),
        },
        Arc::new(RwLock::new(window)),
    )
    .with_clock(clock.clone());
    let check = |m: &WakuMessage| validator.validate(&m.encode()).0;
    let rln_id = rln_identifier();

    assert_eq!(
        check(&proved(&s, message("now", now), 0, None, rln_id)),
        Verdict::Accept
    );
    // Six minutes later by the validator's clock, a message dated `now` is too old...
    clock.advance(Duration::from_secs(360));
    let later = proved(&s, message("later", now), 1, None, rln_id);
    assert_eq!(
        check(&later),
        Verdict::Reject(Rejection::TimestampOutOfRange)
    );
    // ... six minutes earlier it is from the future ...
    clock.set(now - 360_000_000_000);
    assert_eq!(
        check(&later),
        Verdict::Reject(Rejection::TimestampOutOfRange)
    );
    // ... and back at `now` it passes: the refusals recorded nothing.
    clock.set(now);
    assert_eq!(check(&later), Verdict::Accept);
}
