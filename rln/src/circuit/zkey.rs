//! Reading snarkjs `.zkey` (Groth16): a `zkey` container of numbered sections. Field elements
//! are little-endian Montgomery form; section 4's coefficients carry one more factor of R, and
//! its rows past the real constraints are the public-input rows snarkjs adds, dropped here
//! because the QAP reduction adds them back.

use ark_bn254::{Fr, G1Affine, G2Affine};
use ark_ff::BigInt;
use ark_groth16::VerifyingKey;

use super::{
    ArtifactError,
    key::{Matrices, ProvingKey},
    reader::Reader,
};

const WHAT: &str = "rln_final.zkey";

/// Sections a Groth16 proving key needs, by snarkjs' ids.
const HEADER: u32 = 1;
const GROTH16_HEADER: u32 = 2;
const IC: u32 = 3;
const COEFFS: u32 = 4;
const POINTS_A: u32 = 5;
const POINTS_B1: u32 = 6;
const POINTS_B2: u32 = 7;
const POINTS_C: u32 = 8;
const POINTS_H: u32 = 9;

/// Parses a `.zkey` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<ProvingKey, ArtifactError> {
    let sections = sections(bytes)?;
    let section = |id: u32| {
        sections
            .iter()
            .find(|(sid, _)| *sid == id)
            .map(|(_, body)| Reader::new(body, WHAT))
            .ok_or_else(|| Reader::new(bytes, WHAT).malformed(format!("section {id} is missing")))
    };

    let mut r = section(HEADER)?;
    if r.u32()? != 1 {
        return Err(r.malformed("not a Groth16 key"));
    }
    let mut r = section(GROTH16_HEADER)?;
    let n8q = r.u32()? as usize;
    r.skip(n8q)?;
    let n8r = r.u32()? as usize;
    r.skip(n8r)?;
    if n8q != 32 || n8r != 32 {
        return Err(r.malformed("field sizes are not BN254's"));
    }
    let n_vars = r.u32()? as usize;
    let n_public = r.u32()? as usize;
    let _domain_size = r.u32()?;
    let alpha_g1 = r.snark_g1()?;
    let beta_g1 = r.snark_g1()?;
    let beta_g2 = r.snark_g2()?;
    let gamma_g2 = r.snark_g2()?;
    let delta_g1 = r.snark_g1()?;
    let delta_g2 = r.snark_g2()?;

    let gamma_abc_g1 = g1_points(&mut section(IC)?, n_public + 1)?;
    let a_query = g1_points(&mut section(POINTS_A)?, n_vars)?;
    let b_g1_query = g1_points(&mut section(POINTS_B1)?, n_vars)?;
    let mut b2 = section(POINTS_B2)?;
    let b_g2_query = (0..n_vars)
        .map(|_| b2.snark_g2())
        .collect::<Result<Vec<G2Affine>, _>>()?;
    let l_query = g1_points(&mut section(POINTS_C)?, n_vars.saturating_sub(n_public + 1))?;
    let mut h = section(POINTS_H)?;
    let h_len = h.remaining() / 64;
    let h_query = g1_points(&mut h, h_len)?;

    let matrices = coefficients(&mut section(COEFFS)?, n_vars, n_public)?;
    let key = ark_groth16::ProvingKey {
        vk: VerifyingKey {
            alpha_g1,
            beta_g2,
            gamma_g2,
            delta_g2,
            gamma_abc_g1,
        },
        beta_g1,
        delta_g1,
        a_query,
        b_g1_query,
        b_g2_query,
        h_query,
        l_query,
    };
    ProvingKey { key, matrices }.check_network_circuit(WHAT)
}

/// Splits the container into `(id, body)` sections.
fn sections(bytes: &[u8]) -> Result<Vec<(u32, &[u8])>, ArtifactError> {
    let mut r = Reader::new(bytes, WHAT);
    if r.take(4)? != b"zkey" {
        return Err(ArtifactError::Malformed {
            what: WHAT,
            offset: 0,
            detail: "not a snarkjs zkey (wrong magic)".into(),
        });
    }
    let _version = r.u32()?;
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let id = r.u32()?;
        let len = r.u64()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= r.remaining())
            .ok_or_else(|| r.truncated(len as usize))?;
        out.push((id, r.take(len)?));
    }
    Ok(out)
}

fn g1_points(r: &mut Reader<'_>, n: usize) -> Result<Vec<G1Affine>, ArtifactError> {
    if n.checked_mul(64).is_none_or(|bytes| bytes > r.remaining()) {
        return Err(r.truncated(n.saturating_mul(64)));
    }
    (0..n).map(|_| r.snark_g1()).collect()
}

/// Section 4: `(matrix, constraint, signal, value)` records for A (0) and B (1).
fn coefficients(
    r: &mut Reader<'_>,
    n_vars: usize,
    n_public: usize,
) -> Result<Matrices, ArtifactError> {
    let count = r.u32()? as usize;
    if count.saturating_mul(44) > r.remaining() {
        return Err(r.truncated(count.saturating_mul(44)));
    }
    // snarkjs stores c·R in Montgomery form; one more Montgomery reduction gives c.
    let r_inv = Fr::new_unchecked(BigInt::one());
    let mut entries = Vec::with_capacity(count);
    let mut rows = 0;
    for _ in 0..count {
        let matrix = r.u32()?;
        let constraint = r.u32()? as usize;
        let signal = r.u32()? as usize;
        let value = r.mont_fr()? * r_inv;
        if matrix > 1 || signal >= n_vars {
            return Err(r.malformed(format!(
                "coefficient for matrix {matrix}, signal {signal} is out of range"
            )));
        }
        rows = rows.max(constraint + 1);
        entries.push((matrix, constraint, signal, value));
    }
    let num_constraints = rows.saturating_sub(n_public + 1);
    let mut a = vec![Vec::new(); num_constraints];
    let mut b = vec![Vec::new(); num_constraints];
    for (matrix, constraint, signal, value) in entries {
        if constraint >= num_constraints {
            continue;
        }
        let target = if matrix == 0 { &mut a } else { &mut b };
        target[constraint].push((value, signal));
    }
    Ok(Matrices {
        num_instance: n_public + 1,
        num_constraints,
        a,
        b,
    })
}
