//! The operations a witness graph node can apply, with the semantics circom-witnesscalc gives
//! them over the BN254 scalar field.
//!
//! Values are field elements; "int(v)" is the canonical integer in `[0, r)`. Comparisons are
//! signed: a value above `(r - 1) / 2` stands for the negative number `int(v) - r`. Division by
//! zero (field or integer) yields 0 rather than an error, as in circom's witness generators.

use std::cmp::Ordering;

use ark_ff::{BigInt, BigInteger, Field, One, PrimeField, Zero};

use crate::field::Fr;

/// The integer representation of a field element.
type Int = BigInt<4>;

/// Shifts by this many bits or more give 0: no field element has bits at or above it.
const SHIFT_LIMIT: u64 = 254;

/// A node operation with one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnoOp {
    Neg,
    Id,
}

/// A node operation with two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DuoOp {
    Mul,
    Div,
    Add,
    Sub,
    Pow,
    Idiv,
    Mod,
    Eq,
    Neq,
    Lt,
    Gt,
    Leq,
    Geq,
    Land,
    Lor,
    Shl,
    Shr,
    Bor,
    Band,
    Bxor,
}

/// A node operation with three operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TresOp {
    TernCond,
}

/// Why an operation has no field result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpError {
    /// `a << b` does not fit below the field modulus.
    ShlOverflow,
}

/// An operation code this evaluator does not implement: a known operation by name, or an
/// unknown code of some arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOp {
    /// A circom-witnesscalc operation we do not evaluate (the RLN circuit does not use it).
    Named(&'static str),
    /// A code outside the operation enum.
    Code {
        /// "unary", "binary" or "ternary".
        arity: &'static str,
        /// The code.
        code: i32,
    },
}

impl std::fmt::Display for UnknownOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(name) => f.write_str(name),
            Self::Code { arity, code } => write!(f, "{arity} operation #{code}"),
        }
    }
}

impl UnoOp {
    /// Decodes the protobuf enum value.
    pub(super) fn from_code(code: i32) -> Result<Self, UnknownOp> {
        match code {
            0 => Ok(Self::Neg),
            1 => Ok(Self::Id),
            2 => Err(UnknownOp::Named("Lnot")),
            3 => Err(UnknownOp::Named("Bnot")),
            4 => Err(UnknownOp::Named("Sqrt")),
            code => Err(UnknownOp::Code {
                arity: "unary",
                code,
            }),
        }
    }

    pub(super) fn apply(self, a: Fr) -> Fr {
        match self {
            Self::Neg => -a,
            Self::Id => a,
        }
    }
}

impl DuoOp {
    /// Decodes the protobuf enum value.
    pub(super) fn from_code(code: i32) -> Result<Self, UnknownOp> {
        const OPS: [DuoOp; 20] = [
            DuoOp::Mul,
            DuoOp::Div,
            DuoOp::Add,
            DuoOp::Sub,
            DuoOp::Pow,
            DuoOp::Idiv,
            DuoOp::Mod,
            DuoOp::Eq,
            DuoOp::Neq,
            DuoOp::Lt,
            DuoOp::Gt,
            DuoOp::Leq,
            DuoOp::Geq,
            DuoOp::Land,
            DuoOp::Lor,
            DuoOp::Shl,
            DuoOp::Shr,
            DuoOp::Bor,
            DuoOp::Band,
            DuoOp::Bxor,
        ];
        usize::try_from(code)
            .ok()
            .and_then(|i| OPS.get(i).copied())
            .ok_or(UnknownOp::Code {
                arity: "binary",
                code,
            })
    }

    /// `a op b`. Only a left shift out of the field can fail.
    #[inline]
    pub(super) fn apply(self, a: Fr, b: Fr) -> Result<Fr, OpError> {
        Ok(match self {
            Self::Mul => a * b,
            Self::Add => a + b,
            Self::Sub => a - b,
            Self::Div => b.inverse().map_or_else(Fr::zero, |inv| a * inv),
            Self::Pow => a.pow(b.into_bigint()),
            Self::Idiv => from_int(div_rem(a.into_bigint(), b.into_bigint()).0),
            Self::Mod => from_int(div_rem(a.into_bigint(), b.into_bigint()).1),
            Self::Eq => bool_fr(a == b),
            Self::Neq => bool_fr(a != b),
            Self::Lt => bool_fr(signed_cmp(a, b) == Ordering::Less),
            Self::Gt => bool_fr(signed_cmp(a, b) == Ordering::Greater),
            Self::Leq => bool_fr(signed_cmp(a, b) != Ordering::Greater),
            Self::Geq => bool_fr(signed_cmp(a, b) != Ordering::Less),
            Self::Land => bool_fr(!a.is_zero() && !b.is_zero()),
            Self::Lor => bool_fr(!a.is_zero() || !b.is_zero()),
            Self::Shl => return shl(a, b),
            Self::Shr => shr(a, b),
            Self::Bor => bitwise(a, b, |x, y| x | y),
            Self::Band => bitwise(a, b, |x, y| x & y),
            Self::Bxor => bitwise(a, b, |x, y| x ^ y),
        })
    }
}

impl TresOp {
    /// Decodes the protobuf enum value.
    pub(super) fn from_code(code: i32) -> Result<Self, UnknownOp> {
        match code {
            0 => Ok(Self::TernCond),
            code => Err(UnknownOp::Code {
                arity: "ternary",
                code,
            }),
        }
    }

    pub(super) fn apply(self, a: Fr, b: Fr, c: Fr) -> Fr {
        match self {
            Self::TernCond => {
                if a.is_zero() {
                    c
                } else {
                    b
                }
            }
        }
    }
}

fn bool_fr(b: bool) -> Fr {
    if b { Fr::one() } else { Fr::zero() }
}

/// An integer known to be below the modulus, as a field element.
fn from_int(x: Int) -> Fr {
    Fr::from_bigint(x).expect("results of integer division are below their dividend")
}

/// Signed comparison: values above `(r - 1) / 2` are negative.
fn signed_cmp(a: Fr, b: Fr) -> Ordering {
    let (a, b) = (a.into_bigint(), b.into_bigint());
    let half = Fr::MODULUS_MINUS_ONE_DIV_TWO;
    match (a > half, b > half) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // Same sign: `int(v) - r` keeps the order of `int(v)`.
        _ => a.cmp(&b),
    }
}

/// Integer quotient and remainder; both 0 when `b` is 0.
fn div_rem(a: Int, b: Int) -> (Int, Int) {
    if b.is_zero() {
        return (Int::zero(), Int::zero());
    }
    let mut quotient = Int::zero();
    let mut rem = Int::zero();
    for i in (0..a.num_bits() as usize).rev() {
        // rem < b < 2^254, so doubling cannot overflow 256 bits.
        rem.mul2();
        if a.get_bit(i) {
            rem.0[0] |= 1;
        }
        if rem >= b {
            rem.sub_with_borrow(&b);
            quotient.0[i / 64] |= 1 << (i % 64);
        }
    }
    (quotient, rem)
}

/// The shift amount if it is below [`SHIFT_LIMIT`], else `None`.
fn shift_amount(b: Fr) -> Option<u32> {
    let b = b.into_bigint();
    (b < Int::from(SHIFT_LIMIT)).then(|| u32::try_from(b.0[0]).expect("below 254"))
}

fn shl(a: Fr, b: Fr) -> Result<Fr, OpError> {
    match shift_amount(b) {
        None => Ok(Fr::zero()),
        Some(n) => Fr::from_bigint(a.into_bigint() << n).ok_or(OpError::ShlOverflow),
    }
}

fn shr(a: Fr, b: Fr) -> Fr {
    match shift_amount(b) {
        None => Fr::zero(),
        Some(n) => from_int(a.into_bigint() >> n),
    }
}

/// A bitwise operation on the integer representations, reduced once: operands are below
/// 2^254 < 2r, so one subtraction always lands below r.
fn bitwise(a: Fr, b: Fr, op: impl Fn(Int, Int) -> Int) -> Fr {
    let mut x = op(a.into_bigint(), b.into_bigint());
    if x >= Fr::MODULUS {
        x.sub_with_borrow(&Fr::MODULUS);
    }
    from_int(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: u64) -> Fr {
        Fr::from(x)
    }

    fn neg(x: u64) -> Fr {
        -Fr::from(x)
    }

    fn duo(op: DuoOp, a: Fr, b: Fr) -> Fr {
        op.apply(a, b).unwrap()
    }

    #[test]
    fn codes_follow_the_protobuf_enums() {
        assert_eq!(DuoOp::from_code(0), Ok(DuoOp::Mul));
        assert_eq!(DuoOp::from_code(16), Ok(DuoOp::Shr));
        assert_eq!(DuoOp::from_code(19), Ok(DuoOp::Bxor));
        assert!(DuoOp::from_code(20).is_err());
        assert!(DuoOp::from_code(-1).is_err());
        assert_eq!(UnoOp::from_code(1), Ok(UnoOp::Id));
        assert_eq!(UnoOp::from_code(4), Err(UnknownOp::Named("Sqrt")));
        assert_eq!(TresOp::from_code(0), Ok(TresOp::TernCond));
        assert!(TresOp::from_code(1).is_err());
    }

    #[test]
    fn division_by_zero_gives_zero() {
        for op in [DuoOp::Div, DuoOp::Idiv, DuoOp::Mod] {
            assert_eq!(duo(op, f(7), Fr::zero()), Fr::zero(), "{op:?}");
        }
        assert_eq!(duo(DuoOp::Div, f(1), f(2)) * f(2), f(1));
    }

    #[test]
    fn integer_division_and_modulo() {
        assert_eq!(duo(DuoOp::Idiv, f(17), f(5)), f(3));
        assert_eq!(duo(DuoOp::Mod, f(17), f(5)), f(2));
        assert_eq!(duo(DuoOp::Idiv, f(4), f(5)), f(0));
        // On the canonical integers, not the signed view: (r - 1) / 2 == HALF.
        let half = Fr::from_bigint(Fr::MODULUS_MINUS_ONE_DIV_TWO).unwrap();
        assert_eq!(duo(DuoOp::Idiv, neg(1), f(2)), half);
        assert_eq!(duo(DuoOp::Mod, neg(1), f(2)), f(0));
        let low_40_bits = (Fr::MODULUS.0[0] - 1) & ((1 << 40) - 1);
        assert_eq!(duo(DuoOp::Mod, neg(1), f(1 << 40)), f(low_40_bits));
    }

    #[test]
    fn comparisons_are_signed() {
        let half = Fr::from_bigint(Fr::MODULUS_MINUS_ONE_DIV_TWO).unwrap();
        let cases = [
            (f(1), f(2), Ordering::Less),
            (f(2), f(2), Ordering::Equal),
            (neg(1), f(0), Ordering::Less),
            (f(0), neg(1), Ordering::Greater),
            (neg(2), neg(1), Ordering::Less),
            (half, half + f(1), Ordering::Greater),
            (half + f(1), neg(1), Ordering::Less),
        ];
        for (a, b, ord) in cases {
            let expect = |want: bool| bool_fr(want);
            assert_eq!(duo(DuoOp::Lt, a, b), expect(ord.is_lt()), "{a} < {b}");
            assert_eq!(duo(DuoOp::Gt, a, b), expect(ord.is_gt()), "{a} > {b}");
            assert_eq!(duo(DuoOp::Leq, a, b), expect(ord.is_le()), "{a} <= {b}");
            assert_eq!(duo(DuoOp::Geq, a, b), expect(ord.is_ge()), "{a} >= {b}");
            assert_eq!(duo(DuoOp::Eq, a, b), expect(ord.is_eq()));
            assert_eq!(duo(DuoOp::Neq, a, b), expect(ord.is_ne()));
        }
    }

    #[test]
    fn shifts() {
        assert_eq!(duo(DuoOp::Shr, f(0b1011), f(0)), f(0b1011));
        assert_eq!(duo(DuoOp::Shr, f(0b1011), f(1)), f(0b101));
        assert_eq!(duo(DuoOp::Shl, f(0b1011), f(2)), f(0b101100));
        assert_eq!(duo(DuoOp::Shl, f(1), f(200)), f(2).pow([200u64]));
        assert_eq!(duo(DuoOp::Shr, f(2).pow([200u64]), f(200)), f(1));
        assert_eq!(duo(DuoOp::Shr, neg(1), f(253)), f(1));
        for big in [f(254), f(255), f(1000), neg(1)] {
            assert_eq!(duo(DuoOp::Shl, f(1), big), Fr::zero());
            assert_eq!(duo(DuoOp::Shr, neg(1), big), Fr::zero());
        }
        assert_eq!(
            DuoOp::Shl.apply(neg(1), f(1)),
            Err(OpError::ShlOverflow),
            "2(r - 1) is not a field element"
        );
        assert_eq!(DuoOp::Shl.apply(f(1), f(253)), Ok(f(2).pow([253u64])));
    }

    #[test]
    fn bitwise_ops_reduce_once() {
        assert_eq!(duo(DuoOp::Band, f(0b1100), f(0b1010)), f(0b1000));
        assert_eq!(duo(DuoOp::Bor, f(0b1100), f(0b1010)), f(0b1110));
        assert_eq!(duo(DuoOp::Bxor, f(0b1100), f(0b1010)), f(0b0110));
        // r - 1 has bit 251 clear (r starts 0x3064...), so (r - 1) | 2^251 = r - 1 + 2^251 > r.
        let top = f(2).pow([251u64]);
        let mut expect = neg(1).into_bigint() | top.into_bigint();
        expect.sub_with_borrow(&Fr::MODULUS);
        assert_eq!(
            duo(DuoOp::Bor, neg(1), top),
            Fr::from_bigint(expect).unwrap()
        );
    }

    #[test]
    fn logic_pow_and_unary() {
        assert_eq!(duo(DuoOp::Land, f(3), f(0)), f(0));
        assert_eq!(duo(DuoOp::Land, f(3), neg(1)), f(1));
        assert_eq!(duo(DuoOp::Lor, f(0), f(0)), f(0));
        assert_eq!(duo(DuoOp::Lor, f(0), f(9)), f(1));
        assert_eq!(duo(DuoOp::Pow, f(3), f(5)), f(243));
        assert_eq!(duo(DuoOp::Pow, f(0), f(0)), f(1));
        assert_eq!(UnoOp::Neg.apply(f(5)), neg(5));
        assert_eq!(UnoOp::Neg.apply(f(0)), f(0));
        assert_eq!(UnoOp::Id.apply(f(5)), f(5));
        assert_eq!(TresOp::TernCond.apply(f(0), f(1), f(2)), f(2));
        assert_eq!(TresOp::TernCond.apply(f(7), f(1), f(2)), f(1));
    }
}
