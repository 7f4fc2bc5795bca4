//! Every part against arkworks' BN254: the tower's products and squares, the cyclotomic
//! square, the final exponentiation, and whole pairing products on random and edge points.

use ark_bn254::{Bn254, Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{
    AffineRepr, CurveGroup, PrimeGroup,
    pairing::{MillerLoopOutput, Pairing},
};
use ark_ff::{CyclotomicMultSubgroup, Field, PrimeField, UniformRand};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// An element of the cyclotomic subgroup, as the easy part of the final exponentiation
/// leaves it.
fn cyclotomic(rng: &mut ChaCha20Rng) -> Fq12 {
    let f = Fq12::rand(rng);
    let r = mul12(&conjugate(&f), &f.inverse().unwrap());
    mul12(&frobenius(&r, 2), &r)
}

#[test]
fn tower_arithmetic_matches_arkworks() {
    let mut rng = rng(1);
    for _ in 0..200 {
        let (a6, b6) = (Fq6::rand(&mut rng), Fq6::rand(&mut rng));
        assert_eq!(mul6(&a6, &b6), a6 * b6);
        let (a, b) = (Fq12::rand(&mut rng), Fq12::rand(&mut rng));
        assert_eq!(mul12(&a, &b), a * b);
        assert_eq!(square12(&a), a.square());
        let (c0, c1, c4) = (
            Fq2::rand(&mut rng),
            Fq2::rand(&mut rng),
            Fq2::rand(&mut rng),
        );
        let mut expected = a;
        expected.mul_by_034(&c0, &c1, &c4);
        assert_eq!(mul12_by_034(&a, &c0, &c1, &c4), expected);
        let c = cyclotomic(&mut rng);
        assert_eq!(cyclotomic_square(&c), c.cyclotomic_square());
    }
}

#[test]
fn the_loop_digits_are_those_of_6x_plus_2() {
    let value = |digits: &[i8]| {
        digits
            .iter()
            .rev()
            .fold(0i128, |acc, d| 2 * acc + i128::from(*d))
    };
    assert_eq!(value(loop_digits()), 6 * i128::from(X) + 2);
    assert_eq!(value(x_digits()), i128::from(X));
    let x = x_digits();
    assert!(x.windows(2).all(|w| w[0] == 0 || w[1] == 0), "a NAF");
    // 64 doublings and 21 additions.
    assert_eq!(loop_digits().len(), 65);
    assert_eq!(loop_digits().iter().filter(|d| **d != 0).count(), 22);
}

#[test]
fn final_exponentiation_matches_arkworks() {
    let mut rng = rng(2);
    for _ in 0..10 {
        let f = Fq12::rand(&mut rng);
        let ours = final_exponentiation(&f).unwrap();
        let theirs = Bn254::final_exponentiation(MillerLoopOutput(f)).unwrap().0;
        assert_eq!(ours, theirs);
    }
    assert_eq!(final_exponentiation(&Fq12::zero()), None);
}

fn arkworks_product(pairs: &[(G1Affine, G2Affine)]) -> Fq12 {
    let (a, b): (Vec<_>, Vec<_>) = pairs.iter().copied().unzip();
    Bn254::multi_pairing(a, b).0
}

/// The pairing product with the lines made each way: projective, fixed (normalized once),
/// affine in a batch, and a mix of projective and fixed. All must agree; one is returned.
fn ours(pairs: &[(G1Affine, G2Affine)]) -> Fq12 {
    let qs: Vec<G2Affine> = pairs.iter().map(|(_, q)| *q).collect();
    let kinds: [Vec<Lines>; 4] = [
        qs.iter().map(Lines::new).collect(),
        qs.iter().map(Lines::fixed).collect(),
        Lines::batch(&qs),
        qs.iter()
            .enumerate()
            .map(|(i, q)| {
                if i % 2 == 0 {
                    Lines::fixed(q)
                } else {
                    Lines::new(q)
                }
            })
            .collect(),
    ];
    let products: Vec<Fq12> = kinds
        .iter()
        .map(|lines| {
            let with: Vec<(G1Affine, &Lines)> =
                pairs.iter().zip(lines).map(|((p, _), l)| (*p, l)).collect();
            pairing_product(&with).unwrap()
        })
        .collect();
    for (kind, product) in products.iter().enumerate() {
        assert_eq!(*product, products[0], "lines of kind {kind}");
    }
    products[0]
}

/// Normalized lines are unique: dividing the projective ones and computing them in affine
/// coordinates give the same coefficients.
#[test]
fn fixed_and_batch_lines_are_the_same_normalized_lines() {
    let mut rng = rng(11);
    let qs: Vec<G2Affine> = (0..5)
        .map(|_| G2Projective::rand(&mut rng).into_affine())
        .chain([G2Affine::generator(), G2Affine::identity()])
        .collect();
    let batch = Lines::batch(&qs);
    for (q, lines) in qs.iter().zip(&batch) {
        assert_eq!(*lines, Lines::fixed(q));
    }
    assert!(batch[6].is_infinity());
    assert!(Lines::batch(&[]).is_empty());
}

#[test]
fn pairings_match_arkworks_on_random_and_edge_points() {
    let mut rng = rng(3);
    let g1 = G1Affine::generator();
    let g2 = G2Affine::generator();
    for n in 1..=5 {
        let pairs: Vec<(G1Affine, G2Affine)> = (0..n)
            .map(|_| {
                (
                    G1Projective::rand(&mut rng).into_affine(),
                    G2Projective::rand(&mut rng).into_affine(),
                )
            })
            .collect();
        assert_eq!(ours(&pairs), arkworks_product(&pairs), "{n} pairs");
    }
    // Generators, identities on either side, a point and its negation.
    let zero1 = G1Affine::identity();
    let zero2 = G2Affine::identity();
    for pairs in [
        vec![(g1, g2)],
        vec![(zero1, g2)],
        vec![(g1, zero2)],
        vec![(g1, g2), (-g1, g2)],
        vec![(g1, g2), (zero1, zero2), (g1, -g2)],
    ] {
        assert_eq!(ours(&pairs), arkworks_product(&pairs), "{pairs:?}");
    }
    // Bilinearity: e(aP, bQ) = e(P, Q)^(ab).
    let (a, b) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
    let lhs = ours(&[((g1 * a).into_affine(), (g2 * b).into_affine())]);
    let base = ours(&[(g1, g2)]);
    assert_eq!(lhs, base.pow((a * b).into_bigint()));
    let _ = G1Projective::generator();
}

#[test]
fn lines_of_a_point_match_arkworks() {
    let mut rng = rng(4);
    let q = G2Projective::rand(&mut rng).into_affine();
    // The same signed digits of 6x + 2 give the same coefficients.
    let ours = Lines::new(&q);
    let theirs = <Bn254 as Pairing>::G2Prepared::from(q);
    assert_eq!(ours.coeffs, theirs.ell_coeffs);
    let miller = multi_miller_loop(&[(G1Affine::generator(), &ours)]);
    assert_eq!(
        miller,
        Bn254::multi_miller_loop([G1Affine::generator()], [theirs]).0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_pair_of_multiples_pairs_as_arkworks(a in 1u64.., b in 1u64.., c in 0u64..) {
        let g1 = G1Affine::generator();
        let g2 = G2Affine::generator();
        let pairs = [
            ((g1 * Fr::from(a)).into_affine(), (g2 * Fr::from(b)).into_affine()),
            ((g1 * Fr::from(c)).into_affine(), g2),
        ];
        prop_assert_eq!(ours(&pairs), arkworks_product(&pairs));
    }
}

/// A point of the twist outside G2 (almost surely: the twist's group is about p·r points).
fn twist_point(rng: &mut ChaCha20Rng) -> G2Affine {
    loop {
        if let Some(p) = G2Affine::get_point_from_x_unchecked(Fq2::rand(rng), true) {
            assert!(p.is_on_curve());
            return p;
        }
    }
}

#[test]
fn the_subgroup_check_agrees_with_arkworks() {
    let mut rng = rng(6);
    assert!(g2_in_subgroup(&G2Affine::generator()));
    assert!(g2_in_subgroup(&G2Affine::identity()));
    for _ in 0..50 {
        let good = G2Projective::rand(&mut rng).into_affine();
        assert!(g2_in_subgroup(&good));
        assert!(g2_in_subgroup(&-good));
        let bad = twist_point(&mut rng);
        assert!(!bad.is_in_correct_subgroup_assuming_on_curve());
        assert!(!g2_in_subgroup(&bad), "{bad:?}");
        // A subgroup point plus a part outside it.
        let mixed = (good + bad).into_affine();
        assert_eq!(
            g2_in_subgroup(&mixed),
            mixed.is_in_correct_subgroup_assuming_on_curve()
        );
        // The part outside times r is still outside (unless the cofactor part vanished).
        let cleared = bad.mul_bigint(Fr::MODULUS).into_affine();
        assert_eq!(
            g2_in_subgroup(&cleared),
            cleared.is_in_correct_subgroup_assuming_on_curve()
        );
    }
}

/// The primes whose product is the order `2p - r` of the twist's group outside G2.
const COFACTOR_PRIMES: [&str; 4] = [
    "10069",
    "5864401",
    "1875725156269",
    "197620364512881247228717050342013327560683201906968909",
];

/// `n·q` for a scalar of any size.
fn times(q: &G2Projective, n: &num_bigint::BigUint) -> G2Projective {
    q.mul_bigint(n.to_u64_digits())
}

/// The verdict of the lines on `q`, made each way (projective, normalized, and in an affine
/// batch between two points of G2), which must agree.
fn lines_verdict(q: &G2Affine, rng: &mut ChaCha20Rng) -> bool {
    let around = [
        G2Projective::rand(rng).into_affine(),
        G2Projective::rand(rng).into_affine(),
    ];
    let batch = Lines::batch(&[around[0], *q, around[1]]);
    assert!(batch[0].in_g2() && batch[2].in_g2());
    let verdict = Lines::new(q).in_g2();
    assert_eq!(Lines::fixed(q).in_g2(), verdict);
    assert_eq!(batch[1].in_g2(), verdict);
    verdict
}

/// The lines' G2 check refuses a point of every prime order of the twist's cofactor, so (the
/// cofactor being squarefree, that group is cyclic) it refuses every point with a part
/// outside G2; it accepts G2 and agrees with arkworks on random points of the twist.
#[test]
fn the_lines_tell_which_points_are_in_g2() {
    use num_bigint::BigUint;
    let mut rng = rng(12);
    let p = BigUint::from(Fq::MODULUS);
    let r = BigUint::from(Fr::MODULUS);
    let primes: Vec<BigUint> = COFACTOR_PRIMES.iter().map(|s| s.parse().unwrap()).collect();
    let cofactor = BigUint::from(2u8) * &p - &r;
    assert_eq!(primes.iter().product::<BigUint>(), cofactor);

    assert!(lines_verdict(&G2Affine::generator(), &mut rng));
    assert!(Lines::new(&G2Affine::identity()).in_g2());
    for round in 0..8 {
        let good = G2Projective::rand(&mut rng);
        assert!(lines_verdict(&good.into_affine(), &mut rng));
        assert!(lines_verdict(&(-good).into_affine(), &mut rng));
        let bad = twist_point(&mut rng);
        assert!(!bad.is_in_correct_subgroup_assuming_on_curve());
        assert!(!lines_verdict(&bad, &mut rng), "round {round}");
        let outside = times(&bad.into_group(), &r);
        for prime in &primes {
            let order_prime = times(&outside, &(&cofactor / prime));
            assert!(
                !order_prime.is_zero(),
                "round {round}: no part of order {prime}"
            );
            assert!(times(&order_prime, prime).is_zero());
            assert!(
                !lines_verdict(&order_prime.into_affine(), &mut rng),
                "order {prime}"
            );
            let mixed = (order_prime + good).into_affine();
            assert!(
                !lines_verdict(&mixed, &mut rng),
                "G2 point plus order {prime}"
            );
        }
    }
}

#[test]
fn weighted_g1_products_match_arkworks() {
    let mut rng = rng(9);
    let g = G1Affine::generator();
    let weight = |w1: u64, w2: u64| Fr::from(w1) + glv_lambda() * Fr::from(w2);
    let edges = [0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63];
    for &w1 in &edges {
        for &w2 in &edges {
            assert_eq!(g1_weighted(&g, w1, w2), g * weight(w1, w2), "{w1}, {w2}");
        }
    }
    for _ in 0..200 {
        let p = G1Projective::rand(&mut rng).into_affine();
        let (w1, w2) = (u64::rand(&mut rng), u64::rand(&mut rng));
        assert_eq!(g1_weighted(&p, w1, w2), p * weight(w1, w2));
    }
    assert!(g1_weighted(&G1Affine::identity(), 5, 7).is_zero());
}

/// Sums of affine points equal arkworks' sums, including the additions the mixed formula
/// cannot do: a running sum equal to the next point (a doubling) or to its negative.
#[test]
fn g1_sums_match_arkworks() {
    let mut rng = rng(10);
    let p = G1Projective::rand(&mut rng).into_affine();
    let q = G1Projective::rand(&mut rng).into_affine();
    let cases: Vec<Vec<G1Affine>> = vec![
        vec![],
        vec![p],
        vec![p, p],
        vec![p, -p],
        vec![p, -p, q],
        vec![p, q, (p + q).into_affine(), -q],
        (0..40)
            .map(|_| G1Projective::rand(&mut rng).into_affine())
            .collect(),
    ];
    for points in cases {
        let expected: G1Projective = points.iter().map(|p| p.into_group()).sum();
        assert_eq!(g1_sum(points.iter().copied()), expected, "{points:?}");
    }
}

/// Compressed points decode as arkworks decodes them: both signs of y, the identity, x
/// coordinates off the curve, values not below p, and both flags at once.
#[test]
fn compressed_points_decode_as_arkworks_decodes_them() {
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    let mut rng = rng(10);
    let mut g1_cases: Vec<[u8; 32]> = Vec::new();
    let mut g2_cases: Vec<[u8; 64]> = Vec::new();
    for _ in 0..300 {
        let mut bytes = [0u8; 32];
        G1Projective::rand(&mut rng)
            .into_affine()
            .serialize_compressed(&mut bytes[..])
            .unwrap();
        g1_cases.push(bytes);
        let mut bytes = [0u8; 64];
        G2Projective::rand(&mut rng)
            .into_affine()
            .serialize_compressed(&mut bytes[..])
            .unwrap();
        g2_cases.push(bytes);
        // Random bytes: mostly x off the curve or not below p, with every flag combination.
        let mut junk = [0u8; 64];
        rng.fill_bytes(&mut junk);
        g2_cases.push(junk);
        g1_cases.push(junk[..32].try_into().unwrap());
        junk[31] &= 0x3f;
        junk[63] &= 0x3f;
        g2_cases.push(junk);
        g1_cases.push(junk[..32].try_into().unwrap());
    }
    let mut identity = [0u8; 64];
    G2Affine::identity()
        .serialize_compressed(&mut identity[..])
        .unwrap();
    g2_cases.push(identity);
    g1_cases.push(identity[32..].try_into().unwrap());
    // x = 0 has y² = 3 on G1 and y² = b' on the twist; x = 1 and small values.
    for x in 0u8..8 {
        for flags in [0u8, 0x40, 0x80, 0xc0] {
            let mut bytes = [0u8; 64];
            bytes[0] = x;
            bytes[31] = flags;
            g1_cases.push(bytes[..32].try_into().unwrap());
            bytes[63] = flags;
            bytes[31] = 0;
            g2_cases.push(bytes);
            bytes[32] = x;
            g2_cases.push(bytes);
        }
    }
    for bytes in &g1_cases {
        let theirs = G1Affine::deserialize_compressed_unchecked(&bytes[..]).ok();
        assert_eq!(g1_from_compressed(bytes), theirs, "{bytes:02x?}");
    }
    for bytes in &g2_cases {
        let theirs = G2Affine::deserialize_compressed_unchecked(&bytes[..]).ok();
        assert_eq!(g2_from_compressed(bytes), theirs, "{bytes:02x?}");
    }
}

#[test]
fn the_window_digits_of_x_are_x() {
    let digits = x_window_digits();
    let value: i128 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| i128::from(*d) << i)
        .sum();
    assert_eq!(value, i128::from(X));
    assert!(
        digits
            .iter()
            .all(|d| *d == 0 || (d % 2 != 0 && d.abs() < 8))
    );
    assert_eq!(digits.iter().filter(|d| **d != 0).count(), 14);
}
