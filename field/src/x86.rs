//! The Montgomery multiplication in x86-64 assembly (BMI2 `mulx`, ADX `adcx`/`adox`).
//!
//! Registers: `rsi` = a, `rdi` = b, `rcx` = the modulus and `-p⁻¹ mod 2^64`; `r8`..`r12`
//! hold the running value `t` (five limbs, renamed from round to round instead of moved),
//! `rax`/`r13` a product's low and high halves, `r14` zero.
#![allow(unsafe_code)]

use ark_bn254::{FqConfig, FrConfig};
use ark_ff::MontConfig;

/// A modulus below 2^254 and `-p⁻¹ mod 2^64`, laid out as the assembly reads them.
#[repr(C)]
pub(crate) struct Modulus {
    limbs: [u64; 4],
    inv: u64,
}

impl Modulus {
    const fn of<C: MontConfig<4>>() -> Self {
        // `t < 2p` must fit in four limbs and `t + a·b_i + m·p` in five.
        assert!(C::MODULUS.0[3] >> 62 == 0, "modulus must be below 2^254");
        Self {
            limbs: C::MODULUS.0,
            inv: C::INV,
        }
    }
}

pub(crate) static FQ: Modulus = Modulus::of::<FqConfig>();
pub(crate) static FR: Modulus = Modulus::of::<FrConfig>();

/// `t += rdx · x` for the four limbs of `x` at `[$x]`, with `t` in registers `t0`..`t4`: low
/// halves along the carry flag, high halves along the overflow flag, both ending in `t4`.
#[rustfmt::skip]
macro_rules! add_product {
    ($x:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            "xor r14d, r14d\n",
            "mulx r13, rax, [", $x, "]\n",
            "adcx ", $t0, ", rax\n",
            "adox ", $t1, ", r13\n",
            "mulx r13, rax, [", $x, " + 8]\n",
            "adcx ", $t1, ", rax\n",
            "adox ", $t2, ", r13\n",
            "mulx r13, rax, [", $x, " + 16]\n",
            "adcx ", $t2, ", rax\n",
            "adox ", $t3, ", r13\n",
            "mulx r13, rax, [", $x, " + 24]\n",
            "adcx ", $t3, ", rax\n",
            "adox ", $t4, ", r13\n",
            "adcx ", $t4, ", r14\n",
        )
    };
}

/// One round for limb `i` of b, with `t` in registers `t0`..`t4` (`t4` is zero on entry).
/// Afterwards `t1`..`t4` hold the new value and `t0` is zero.
#[rustfmt::skip]
macro_rules! round {
    ($i:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            // t += a · b_i
            "mov rdx, [rdi + 8*", $i, "]\n",
            add_product!("rsi", $t0, $t1, $t2, $t3, $t4),
            // m = t0 · (-p⁻¹); t += m · p, which clears t0
            "mov rdx, ", $t0, "\n",
            "imul rdx, [rcx + 32]\n",
            add_product!("rcx", $t0, $t1, $t2, $t3, $t4),
        )
    };
}

/// `t = (r12, r8, r9, r10) < 2p` into `(rax, r13, r14, rdx)`: `t - p` unless that borrows.
#[rustfmt::skip]
macro_rules! subtract_modulus {
    () => {
        concat!(
            "mov rax, r12\n",
            "sub rax, [rcx]\n",
            "mov r13, r8\n",
            "sbb r13, [rcx + 8]\n",
            "mov r14, r9\n",
            "sbb r14, [rcx + 16]\n",
            "mov rdx, r10\n",
            "sbb rdx, [rcx + 24]\n",
            "cmovc rax, r12\n",
            "cmovc r13, r8\n",
            "cmovc r14, r9\n",
            "cmovc rdx, r10\n",
        )
    };
}

/// `a · b / 2^256 mod p`, fully reduced, for `a, b < p`.
#[inline(always)]
pub(crate) fn mul(a: &[u64; 4], b: &[u64; 4], modulus: &'static Modulus) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the assembly reads four limbs from each of `a` and `b` and five words from
    // `modulus`, all valid for reads for the borrows' lifetimes; it writes only the registers
    // declared as outputs or clobbers, touches no stack and no other memory.
    unsafe {
        core::arch::asm!(
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            round!(0, "r8", "r9", "r10", "r11", "r12"),
            round!(1, "r9", "r10", "r11", "r12", "r8"),
            round!(2, "r10", "r11", "r12", "r8", "r9"),
            round!(3, "r11", "r12", "r8", "r9", "r10"),
            // t = (r12, r8, r9, r10) < 2p: subtract p unless that borrows.
            subtract_modulus!(),
            in("rsi") a.as_ptr(),
            in("rdi") b.as_ptr(),
            in("rcx") modulus as *const Modulus,
            out("rax") r0,
            out("r13") r1,
            out("r14") r2,
            out("rdx") r3,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// The 512-bit product `a · b` (little-endian limbs), for `a, b < 2^256`.
#[inline(always)]
pub(crate) fn mul_wide(a: &[u64; 4], b: &[u64; 4]) -> [u64; 8] {
    let mut out = [0u64; 8];
    // SAFETY: the assembly reads four limbs from each of `a` and `b` and writes eight to
    // `out`, all valid for the borrows' lifetimes; it writes only the registers declared as
    // outputs or clobbers and touches no stack.
    unsafe {
        core::arch::asm!(
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            // Row i adds a · b_i at limb i; the window t0..t4 (t4 zero on entry) slides up.
            "mov rdx, [rdi]",
            add_product!("rsi", "r8", "r9", "r10", "r11", "r12"),
            "mov [rcx], r8",
            "xor r8d, r8d",
            "mov rdx, [rdi + 8]",
            add_product!("rsi", "r9", "r10", "r11", "r12", "r8"),
            "mov [rcx + 8], r9",
            "xor r9d, r9d",
            "mov rdx, [rdi + 16]",
            add_product!("rsi", "r10", "r11", "r12", "r8", "r9"),
            "mov [rcx + 16], r10",
            "xor r10d, r10d",
            "mov rdx, [rdi + 24]",
            add_product!("rsi", "r11", "r12", "r8", "r9", "r10"),
            "mov [rcx + 24], r11",
            "mov [rcx + 32], r12",
            "mov [rcx + 40], r8",
            "mov [rcx + 48], r9",
            "mov [rcx + 56], r10",
            in("rsi") a.as_ptr(),
            in("rdi") b.as_ptr(),
            in("rcx") out.as_mut_ptr(),
            out("rax") _,
            out("rdx") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            options(nostack),
        );
    }
    out
}

/// `t / 2^256 mod p`, fully reduced, for `t < 2p·2^256` with its high half below `p`
/// (Montgomery's reduction of the low half, then the high half added).
#[inline(always)]
pub(crate) fn reduce_wide(t: &[u64; 8], modulus: &'static Modulus) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the assembly reads eight limbs of `t` and five words of `modulus`, valid for
    // the borrows' lifetimes; it writes only the registers declared as outputs or clobbers,
    // touches no stack and no other memory.
    unsafe {
        core::arch::asm!(
            "mov r8, [rsi]",
            "mov r9, [rsi + 8]",
            "mov r10, [rsi + 16]",
            "mov r11, [rsi + 24]",
            "xor r12d, r12d",
            // Four rounds of m = t0·(-p⁻¹); t += m·p, which clears t0 (the window slides).
            "mov rdx, r8",
            "imul rdx, [rcx + 32]",
            add_product!("rcx", "r8", "r9", "r10", "r11", "r12"),
            "mov rdx, r9",
            "imul rdx, [rcx + 32]",
            add_product!("rcx", "r9", "r10", "r11", "r12", "r8"),
            "mov rdx, r10",
            "imul rdx, [rcx + 32]",
            add_product!("rcx", "r10", "r11", "r12", "r8", "r9"),
            "mov rdx, r11",
            "imul rdx, [rcx + 32]",
            add_product!("rcx", "r11", "r12", "r8", "r9", "r10"),
            // (r12, r8, r9, r10) ≤ p; adding the high half keeps it below 2p < 2^255.
            "add r12, [rsi + 32]",
            "adc r8, [rsi + 40]",
            "adc r9, [rsi + 48]",
            "adc r10, [rsi + 56]",
            subtract_modulus!(),
            in("rsi") t.as_ptr(),
            in("rcx") modulus as *const Modulus,
            out("rax") r0,
            out("r13") r1,
            out("r14") r2,
            out("rdx") r3,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}
