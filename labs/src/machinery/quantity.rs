//! Resource quantities: `"250m"`, `"1.5"`, `"128Mi"`, `"1e3"`.
//!
//! The API carries every amount of cpu and memory as a string (k8s-openapi's
//! `Quantity` is a `String` newtype), so before the scheduler can add or compare
//! anything it must turn those strings into integers. Kubernetes does the same:
//! the scheduler works in **milli-cpu** (`MilliValue()`) and **bytes**
//! (`Value()`), both `int64`, and both round *up* — a request of `0.1m` cpu is
//! 1 milli-cpu, never 0, so a tiny request can never be rounded into "free".
//!
//! The grammar is `<sign><digits>[.<digits>]<suffix>` where the suffix is one
//! of
//!
//! - binary: `Ki Mi Gi Ti Pi Ei` (powers of 1024),
//! - decimal SI: `n u m "" k M G T P E` (powers of 1000),
//! - a decimal exponent: `e3`, `E-2` (note `1E` is exa, `1E6` is 10⁶).
//!
//! We only need non-negative amounts (requests and allocatable can't be
//! negative; the API server rejects them), so a negative quantity is an error.

use std::fmt;

/// Why a quantity string could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantityError {
    /// Not of the form number + suffix (empty, stray characters, two dots...).
    Invalid(String),
    /// A suffix Kubernetes does not know, such as `Qi` or `mi`.
    UnknownSuffix(String),
    /// Negative amounts are valid Kubernetes quantities, but never valid
    /// resource requests, so the scheduler refuses them.
    Negative(String),
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityError::Invalid(s) => write!(f, "invalid quantity {s:?}"),
            QuantityError::UnknownSuffix(s) => write!(f, "unknown suffix in quantity {s:?}"),
            QuantityError::Negative(s) => write!(f, "negative quantity {s:?}"),
        }
    }
}

impl std::error::Error for QuantityError {}

/// cpu in milli-cores: `"250m"` → 250, `"1.5"` → 1500, `"2"` → 2000.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 3)
}

/// Memory, ephemeral-storage and counts (`pods`) as plain integers:
/// `"128Mi"` → 134217728, `"1G"` → 1000000000, `"110"` → 110.
pub fn parse_bytes(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 0)
}

/// Parse `s` and return `ceil(value × 10^scale)`, saturating at `i64::MAX`
/// (Kubernetes' own int64 accessors cannot hold more either).
///
/// Exact integer arithmetic (u128), no floats: `0.1 + 0.2` style errors would
/// make a node that is exactly full look over-full.
fn parse_scaled(s: &str, scale: i32) -> Result<i64, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    let bytes = s.as_bytes();

    // Sign.
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };

    // Digits with at most one decimal point. The mantissa collects all digits;
    // `frac` counts those after the point, so value = mantissa / 10^frac.
    let mut mantissa: u128 = 0;
    let mut digits = 0;
    let mut frac: i32 = 0;
    let mut seen_point = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                mantissa = mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u128::from(bytes[i] - b'0')))
                    .ok_or_else(invalid)?;
                digits += 1;
                if seen_point {
                    frac += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(invalid());
    }

    // Suffix: a power of two (binary), or a power of ten (SI or exponent).
    let suffix = &s[i..];
    let (pow2, pow10): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) => {
            let exp = &suffix[1..];
            let well_formed = exp
                .strip_prefix(['+', '-'])
                .unwrap_or(exp)
                .bytes()
                .all(|b| b.is_ascii_digit());
            match exp.parse::<i32>() {
                Ok(e) if well_formed && e.abs() <= 1000 => (0, e),
                _ => return Err(QuantityError::UnknownSuffix(s.to_string())),
            }
        }
        _ => return Err(QuantityError::UnknownSuffix(s.to_string())),
    };

    if negative && mantissa != 0 {
        return Err(QuantityError::Negative(s.to_string()));
    }
    if mantissa == 0 {
        return Ok(0);
    }

    // value × 10^scale = mantissa × 2^pow2 × 10^(pow10 + scale − frac)
    let e10 = pow10 + scale - frac;
    let saturate = i64::MAX as u128;
    let Some(mut num) = mantissa.checked_mul(1u128 << pow2) else {
        return Ok(i64::MAX);
    };
    if e10 >= 0 {
        for _ in 0..e10 {
            match num.checked_mul(10) {
                Some(n) if n <= saturate => num = n,
                _ => return Ok(i64::MAX),
            }
        }
        Ok(num.min(saturate) as i64)
    } else {
        // Divide, rounding up. A divisor beyond u128 means the value is a
        // positive amount smaller than one unit: it rounds up to 1.
        let mut den: u128 = 1;
        for _ in 0..(-e10) {
            match den.checked_mul(10) {
                Some(d) => den = d,
                None => return Ok(1),
            }
        }
        Ok(num.div_ceil(den).min(saturate) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_milli_cpu() {
        let cases = [
            ("100m", 100),
            ("1", 1000),
            ("0", 0),
            ("0.5", 500),
            (".5", 500),
            ("1.5", 1500),
            ("2.25", 2250),
            ("+2", 2000),
            ("0.1m", 1), // rounds up, never down to 0
            ("1500u", 2),
            ("1e3", 1_000_000),
            ("12e-3", 12),
            ("1k", 1_000_000),
            ("250000000n", 250),
        ];
        for (q, want) in cases {
            assert_eq!(parse_cpu_millis(q), Ok(want), "{q}");
        }
    }

    #[test]
    fn memory_quantities_become_bytes() {
        let cases = [
            ("0", 0),
            ("128", 128),
            ("1Ki", 1024),
            ("128Mi", 128 * 1024 * 1024),
            ("1.5Gi", 1_610_612_736),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1k", 1000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("2T", 2_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1e6", 1_000_000),
            ("1E6", 1_000_000), // exponent, not exa followed by junk
            ("5e-1", 1),        // half a byte rounds up
            ("100n", 1),
            ("1m", 1),
            ("129e6", 129_000_000),
            ("16Ei", i64::MAX), // saturates like int64 accessors
            ("1e30", i64::MAX),
            ("1e-400", 1),
        ];
        for (q, want) in cases {
            assert_eq!(parse_bytes(q), Ok(want), "{q}");
        }
    }

    #[test]
    fn malformed_quantities_are_errors() {
        for q in ["", "abc", "Mi", ".", "1.2.3", "1 Mi", " 1", "1e", "1e+"] {
            assert!(
                matches!(
                    parse_bytes(q),
                    Err(QuantityError::Invalid(_) | QuantityError::UnknownSuffix(_))
                ),
                "{q:?} should not parse: {:?}",
                parse_bytes(q)
            );
        }
        for q in ["1Qi", "1mi", "1KI", "1K", "1e3.5"] {
            assert_eq!(
                parse_bytes(q),
                Err(QuantityError::UnknownSuffix(q.into())),
                "{q}"
            );
        }
        assert_eq!(
            parse_cpu_millis("-1"),
            Err(QuantityError::Negative("-1".into()))
        );
        assert_eq!(parse_cpu_millis("-0"), Ok(0));
    }
}
