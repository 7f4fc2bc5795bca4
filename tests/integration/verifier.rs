//! Verification against proofs made by other implementations.

use std::str::FromStr;

use ark_bn254::{Fq, Fq2, G1Affine, G2Affine};
use ark_groth16::Proof;
use ark_serialize::CanonicalSerialize;
use rand::SeedableRng;
use wakurln::rln::{
    field::{Fr, parse},
    verifier::{ProofError, PublicInputs, Verifier, decode_proof, decode_proof_on_curves},
};

fn fq(s: &str) -> Fq {
    Fq::from_str(s).unwrap()
}

/// A proof made by snarkjs for the network's circuit (published with zerokit's tests).
fn snarkjs_proof() -> (Proof<ark_bn254::Bn254>, PublicInputs) {
    let a = G1Affine::new(
        fq("606446415626469993821291758185575230335423926365686267140465300918089871829"),
        fq("14881534001609371078663128199084130129622943308489025453376548677995646280161"),
    );
    let b = G2Affine::new(
        Fq2::new(
            fq("18053812507994813734583839134426913715767914942522332114506614735770984570178"),
            fq("11219916332635123001710279198522635266707985651975761715977705052386984005181"),
        ),
        Fq2::new(
            fq("17371289494006920912949790045699521359436706797224428511776122168520286372970"),
            fq("14038575727257298083893642903204723310279435927688342924358714639926373603890"),
        ),
    );
    let c = G1Affine::new(
        fq("17701377127561410274754535747274973758826089226897242202671882899370780845888"),
        fq("12608543716397255084418384146504333522628400182843246910626782513289789807030"),
    );
    let inputs = [
        "16401008481486069296141645075505218976370369489687327284155463920202585288271",
        "8502402278351299594663821509741133196466235670407051417832304486953898514733",
        "9102791780887227194595604713537772536258726662792598131262022534710887343694",
        "20645213238265527935869146898028115621427162613172918400241870500502509785943",
        "21074405743803627666274838159589343934394162804826017440941339048886754734203",
    ]
    .map(|s| parse(s).unwrap());
    (Proof { a, b, c }, inputs)
}

#[test]
fn a_snarkjs_proof_verifies_and_a_changed_signal_does_not() {
    let (proof, inputs) = snarkjs_proof();
    let verifier = Verifier::network();
    assert!(verifier.verify(&proof, &inputs));
    for i in 0..inputs.len() {
        let mut changed = inputs;
        changed[i] += Fr::from(1u64);
        assert!(!verifier.verify(&proof, &changed), "signal {i} changed");
    }
}

#[test]
fn compressed_bytes_round_trip() {
    let (proof, _) = snarkjs_proof();
    let mut bytes = Vec::new();
    proof.serialize_compressed(&mut bytes).unwrap();
    assert_eq!(bytes.len(), 128);
    assert_eq!(decode_proof(&bytes).unwrap(), proof);
}

#[test]
fn batch_finds_exactly_the_bad_proofs() {
    let (proof, inputs) = snarkjs_proof();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut batch = vec![(proof.clone(), inputs); 37];
    let bad = [0usize, 5, 6, 36];
    for &i in &bad {
        batch[i].1[3] += Fr::from(i as u64 + 1);
    }
    let result = Verifier::network().verify_batch(&batch, &mut rng);
    for (i, ok) in result.iter().enumerate() {
        assert_eq!(*ok, !bad.contains(&i), "proof {i}");
    }
    let all_good = vec![(proof, inputs); 9];
    assert!(
        Verifier::network()
            .verify_batch(&all_good, &mut rng)
            .iter()
            .all(|ok| *ok)
    );
    assert!(Verifier::network().verify_batch(&[], &mut rng).is_empty());
}

/// A proof whose B is moved off G2 (by a point of the twist's other factor) is refused:
/// `decode_proof` refuses its bytes; `decode_proof_on_curves` reads them, and then `verify`
/// and the batch refuse the proof, and only it.
#[test]
fn a_b_outside_g2_is_refused() {
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::{PrimeField, UniformRand};
    let (proof, inputs) = snarkjs_proof();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let outside = loop {
        if let Some(p) = G2Affine::get_point_from_x_unchecked(Fq2::rand(&mut rng), true) {
            // Its part in G2 removed: what is left lies wholly outside.
            break p.mul_bigint(Fr::MODULUS);
        }
    };
    let moved = Proof {
        b: (proof.b + outside).into_affine(),
        ..proof.clone()
    };
    assert!(!moved.b.is_in_correct_subgroup_assuming_on_curve());
    let mut bytes = Vec::new();
    moved.serialize_compressed(&mut bytes).unwrap();
    assert_eq!(decode_proof(&bytes), Err(ProofError::InvalidPoints));
    let read = decode_proof_on_curves(&bytes).unwrap();
    assert_eq!(read, moved);
    let verifier = Verifier::network();
    assert!(!verifier.verify(&read, &inputs));
    let mut batch = vec![(proof, inputs); 12];
    batch[3].0 = read.clone();
    batch[10].0 = read;
    let result = verifier.verify_batch(&batch, &mut rng);
    for (i, ok) in result.iter().enumerate() {
        assert_eq!(*ok, i != 3 && i != 10, "proof {i}");
    }
}
