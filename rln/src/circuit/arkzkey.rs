//! Reading `.arkzkey`: the arkworks uncompressed serialization of a Groth16 proving key
//! followed by the constraint matrices (six u64 counts, then A, B and C as lists of rows of
//! `(coefficient, wire)`; C is empty for circom circuits).

use ark_groth16::VerifyingKey;

use super::{
    ArtifactError,
    key::{Matrices, Matrix, ProvingKey},
    reader::Reader,
};

const WHAT: &str = "rln_final.arkzkey";

/// Parses an `.arkzkey` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<ProvingKey, ArtifactError> {
    let mut r = Reader::new(bytes, WHAT);
    let vk = VerifyingKey {
        alpha_g1: r.ark_g1()?,
        beta_g2: r.ark_g2()?,
        gamma_g2: r.ark_g2()?,
        delta_g2: r.ark_g2()?,
        gamma_abc_g1: g1_list(&mut r)?,
    };
    let beta_g1 = r.ark_g1()?;
    let delta_g1 = r.ark_g1()?;
    let a_query = g1_list(&mut r)?;
    let b_g1_query = g1_list(&mut r)?;
    let n = r.count(128)?;
    let b_g2_query = (0..n).map(|_| r.ark_g2()).collect::<Result<_, _>>()?;
    let h_query = g1_list(&mut r)?;
    let l_query = g1_list(&mut r)?;

    let num_instance = usize_field(&mut r)?;
    let _num_witness = r.u64()?;
    let num_constraints = usize_field(&mut r)?;
    r.skip(3 * 8)?; // non-zero counts of A, B and C: recomputed from the rows when needed
    let a = matrix(&mut r)?;
    let b = matrix(&mut r)?;
    let c = matrix(&mut r)?;
    if c.iter().any(|row| !row.is_empty()) {
        return Err(r.malformed("the C matrix is not empty; this is not a circom circuit"));
    }
    if r.remaining() != 0 {
        return Err(r.malformed(format!("{} unexpected bytes after the key", r.remaining())));
    }
    let key = ark_groth16::ProvingKey {
        vk,
        beta_g1,
        delta_g1,
        a_query,
        b_g1_query,
        b_g2_query,
        h_query,
        l_query,
    };
    ProvingKey {
        key,
        matrices: Matrices {
            num_instance,
            num_constraints,
            a,
            b,
        },
    }
    .check_network_circuit(WHAT)
}

fn g1_list(r: &mut Reader<'_>) -> Result<Vec<ark_bn254::G1Affine>, ArtifactError> {
    let n = r.count(64)?;
    (0..n).map(|_| r.ark_g1()).collect()
}

fn usize_field(r: &mut Reader<'_>) -> Result<usize, ArtifactError> {
    let v = r.u64()?;
    usize::try_from(v).map_err(|_| r.malformed(format!("count {v} is too large")))
}

fn matrix(r: &mut Reader<'_>) -> Result<Matrix, ArtifactError> {
    let rows = r.count(8)?;
    (0..rows)
        .map(|_| {
            let n = r.count(40)?;
            (0..n)
                .map(|_| {
                    let coeff = r.fr()?;
                    let wire = usize_field(r)?;
                    Ok((coeff, wire))
                })
                .collect()
        })
        .collect()
}
