//! The coset transform against arkworks' radix-2 domains: inverse FFT on `H`, forward FFT
//! on `g·H`.

use ark_bn254::Fr;
use ark_ff::{FftField, UniformRand, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wakurln_fft::{CosetFft, FftError};

fn arkworks(values: &[Fr], shift: Fr) -> Vec<Fr> {
    let domain = Radix2EvaluationDomain::<Fr>::new(values.len()).unwrap();
    let coset = domain.get_coset(shift).unwrap();
    coset.fft(&domain.ifft(values))
}

fn random(n: usize, seed: u64) -> (Vec<Fr>, Fr) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let values = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    (values, Fr::rand(&mut rng))
}

#[test]
fn every_size_up_to_2_to_the_14_matches_arkworks() {
    for log_n in 1..=14 {
        let n = 1 << log_n;
        let (mut values, shift) = random(n, log_n);
        let want = arkworks(&values, shift);
        CosetFft::new(n, shift)
            .unwrap()
            .domain_to_coset(&mut values);
        assert_eq!(values, want, "size {n}");
    }
}

#[test]
fn circoms_coset_of_odd_2n_th_roots_matches_arkworks() {
    let n = 8192;
    let shift = Fr::get_root_of_unity(2 * n as u64).unwrap();
    let (mut values, _) = random(n, 7);
    let want = arkworks(&values, shift);
    CosetFft::new(n, shift)
        .unwrap()
        .domain_to_coset(&mut values);
    assert_eq!(values, want);
}

#[test]
fn a_constant_stays_constant_and_zero_stays_zero() {
    let fft = CosetFft::new(64, Fr::from(5u64)).unwrap();
    let mut constant = vec![Fr::from(42u64); 64];
    fft.domain_to_coset(&mut constant);
    assert!(constant.iter().all(|v| *v == Fr::from(42u64)));
    let mut zero = vec![Fr::zero(); 64];
    fft.domain_to_coset(&mut zero);
    assert!(zero.iter().all(Zero::is_zero));
}

#[test]
fn a_shift_of_one_is_the_identity() {
    let (mut values, _) = random(256, 3);
    let original = values.clone();
    CosetFft::new(256, Fr::from(1u64))
        .unwrap()
        .domain_to_coset(&mut values);
    assert_eq!(values, original);
}

#[test]
fn bad_sizes_and_shifts_are_errors() {
    for n in [0, 1, 3, 12, 1000] {
        assert_eq!(
            CosetFft::new(n, Fr::from(3u64)).unwrap_err(),
            FftError::Size(n)
        );
    }
    assert_eq!(
        CosetFft::new(1 << 29, Fr::from(3u64)).unwrap_err(),
        FftError::TooLarge(1 << 29)
    );
    assert_eq!(
        CosetFft::new(16, Fr::zero()).unwrap_err(),
        FftError::ZeroShift
    );
}

#[test]
#[should_panic(expected = "a transform of size 16 got 8 values")]
fn a_wrong_length_panics_with_the_sizes() {
    CosetFft::new(16, Fr::from(3u64))
        .unwrap()
        .domain_to_coset(&mut [Fr::zero(); 8]);
}

proptest! {
    #[test]
    fn sparse_inputs_match_arkworks(
        log_n in 1u32..=10,
        seed in any::<u64>(),
        nonzero in prop::collection::vec(any::<u16>(), 0..8),
    ) {
        let n = 1usize << log_n;
        let (dense, shift) = random(n, seed);
        let mut values = vec![Fr::zero(); n];
        for i in nonzero {
            let i = usize::from(i) % n;
            values[i] = dense[i];
        }
        let want = arkworks(&values, shift);
        CosetFft::new(n, shift).unwrap().domain_to_coset(&mut values);
        prop_assert_eq!(values, want);
    }
}
