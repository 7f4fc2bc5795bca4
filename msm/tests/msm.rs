//! Table MSMs against arkworks' own MSM on BN254 G1 and G2, including the inputs that take the
//! special paths of affine addition: equal points (doubling), opposite points (cancellation),
//! the identity, zero scalars and the largest scalar.

use ark_bn254::{Fr, G1Affine, G2Affine};
use ark_ec::{
    AffineRepr, CurveGroup, VariableBaseMSM,
    short_weierstrass::{Affine, Projective, SWCurveConfig},
};
use ark_ff::{UniformRand, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use wakurln_msm::{BatchInvert, Table, best_window};

fn check<P: SWCurveConfig<ScalarField = Fr, BaseField: BatchInvert>>(
    bases: &[Affine<P>],
    scalars: &[Fr],
    window: u32,
) where
    Projective<P>: VariableBaseMSM<MulBase = Affine<P>, ScalarField = Fr>,
{
    let expected = Projective::<P>::msm(bases, scalars).unwrap();
    let table = Table::with_window(bases, window);
    assert_eq!(
        table.msm(scalars).into_affine(),
        expected.into_affine(),
        "{} bases, {window}-bit windows",
        bases.len()
    );
}

fn random_bases<P: SWCurveConfig>(rng: &mut ChaCha20Rng, n: usize) -> Vec<Affine<P>> {
    let points: Vec<Projective<P>> = (0..n).map(|_| Projective::rand(rng)).collect();
    Projective::normalize_batch(&points)
}

/// Random scalars mixed with the values circom witnesses are full of.
fn scalars(rng: &mut ChaCha20Rng, n: usize) -> Vec<Fr> {
    (0..n)
        .map(|_| match rng.gen_range(0..6) {
            0 => Fr::zero(),
            1 => Fr::from(1u64),
            2 => -Fr::from(1u64),
            3 => Fr::from(rng.gen_range(0..1u64 << 20)),
            _ => Fr::rand(rng),
        })
        .collect()
}

#[test]
fn random_inputs_match_arkworks_in_g1_and_g2() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for n in [1, 2, 3, 50, 700] {
        let g1 = random_bases::<ark_bn254::g1::Config>(&mut rng, n);
        let s = scalars(&mut rng, n);
        for window in [2, 5, best_window(n), 13] {
            check(&g1, &s, window);
        }
        let g2 = random_bases::<ark_bn254::g2::Config>(&mut rng, n);
        check(&g2, &s, best_window(n));
    }
}

#[test]
fn a_large_table_splits_its_buckets_and_still_matches() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let bases = random_bases::<ark_bn254::g1::Config>(&mut rng, 8192);
    let s: Vec<Fr> = (0..bases.len()).map(|_| Fr::rand(&mut rng)).collect();
    check(&bases, &s, best_window(bases.len()));
}

#[test]
fn equal_opposite_and_identity_points_are_handled() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let p = G1Affine::rand(&mut rng);
    let q = G1Affine::rand(&mut rng);
    let bases = vec![p, p, -p, p, q, G1Affine::zero(), q, -q, p, G1Affine::zero()];
    let k = Fr::rand(&mut rng);
    // Equal scalars on equal points meet in the same buckets: doublings and cancellations.
    let same = vec![k; bases.len()];
    check(&bases, &same, 4);
    check(&bases, &same, 13);
    let mixed = vec![
        k,
        k,
        k,
        -k,
        Fr::from(3u64),
        k,
        -k,
        -k,
        Fr::zero(),
        Fr::from(1u64),
    ];
    check(&bases, &mixed, 6);
    // The largest scalar, r - 1, on every base.
    check(&bases, &vec![-Fr::from(1u64); bases.len()], 11);

    let g2 = G2Affine::rand(&mut rng);
    check(&[g2, g2, -g2, g2], &[k, k, k, k], 5);
}

#[test]
fn zero_scalars_and_empty_tables_give_the_identity() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let bases = random_bases::<ark_bn254::g1::Config>(&mut rng, 30);
    let table = Table::new(&bases);
    assert!(table.msm(&[Fr::zero(); 30]).is_zero());
    let empty = Table::<ark_bn254::g1::Config>::new(&[]);
    assert!(empty.is_empty());
    assert!(empty.msm(&[]).is_zero());
}

#[test]
#[should_panic(expected = "got 2 scalars")]
fn a_wrong_number_of_scalars_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let bases = random_bases::<ark_bn254::g1::Config>(&mut rng, 3);
    let _ = Table::new(&bases).msm(&[Fr::zero(); 2]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A scalar from the values witnesses hold: zero, ±1, small, or anything.
    fn scalar() -> impl Strategy<Value = Fr> {
        prop_oneof![
            Just(Fr::zero()),
            Just(Fr::from(1u64)),
            Just(-Fr::from(1u64)),
            any::<u32>().prop_map(|v| Fr::from(u64::from(v))),
            any::<[u8; 32]>().prop_map(|b| {
                let mut rng = ChaCha20Rng::from_seed(b);
                Fr::rand(&mut rng)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Bases drawn from a pool of four points, their negations and the identity, so that
        /// equal, opposite and identity points meet in the buckets.
        #[test]
        fn table_msm_equals_arkworks(
            picks in proptest::collection::vec((0usize..9, scalar()), 0..40),
            window in 2u32..=14,
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(12);
            let pool: Vec<G1Affine> = (0..4).map(|_| G1Affine::rand(&mut rng)).collect();
            let base = |i: usize| match i {
                0..4 => pool[i],
                4..8 => -pool[i - 4],
                _ => G1Affine::zero(),
            };
            let bases: Vec<G1Affine> = picks.iter().map(|&(i, _)| base(i)).collect();
            let scalars: Vec<Fr> = picks.iter().map(|&(_, s)| s).collect();
            let expected = Projective::msm(&bases, &scalars).unwrap().into_affine();
            let got = Table::with_window(&bases, window).msm(&scalars).into_affine();
            prop_assert_eq!(got, expected);
        }
    }
}
