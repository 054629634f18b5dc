//! `maxSurge` and `maxUnavailable`: how many pods a rolling update may add
//! above `replicas`, and how many it may take away below it.
//!
//! Both are an `IntOrString`: a number of pods (`1`) or a percentage of
//! `spec.replicas` (`"25%"`). Upstream resolves them in `ResolveFenceposts`
//! (`util/deployment_util.go`) with two rules that the rolling-update
//! arithmetic depends on:
//!
//! * **surge rounds up, unavailable rounds down.** Both roundings err on the
//!   side of availability: rounding the surge up adds capacity, rounding the
//!   unavailability down removes less. 25% of 10 is a surge of 3 and an
//!   unavailability of 2.
//! * **both zero means unavailable 1.** A rollout with no surge and no
//!   unavailability could never move; validation rejects `0`/`0`, but
//!   percentages can still round to zero (`0%`/`0%`, or `10%` of 3 replicas).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{is_rolling_update, replicas};

/// An `IntOrString` that is not a number or a percentage, with upstream's
/// messages (`k8s.io/apimachinery/pkg/util/intstr`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FencepostError {
    #[error("nil value for IntOrString")]
    Nil,
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value for IntOrString: invalid value {0:?}")]
    InvalidValue(String),
}

// ANCHOR: fenceposts
/// Upstream `intstr.GetScaledValueFromIntOrPercent`: a number is taken as it
/// is; a percentage `p%` of `total` is `p * total / 100` computed in `f64`,
/// then rounded up or down.
pub fn get_scaled_value_from_int_or_percent(
    value: Option<&IntOrString>,
    total: i32,
    round_up: bool,
) -> Result<i32, FencepostError> {
    match value.ok_or(FencepostError::Nil)? {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%').ok_or(FencepostError::NotAPercentage)?;
            // Go's `strconv.Atoi`: an optional sign, then decimal digits.
            let percent: i64 = digits
                .parse()
                .map_err(|_| FencepostError::InvalidValue(s.clone()))?;
            let exact = percent as f64 * total as f64 / 100.0;
            let rounded = if round_up {
                exact.ceil()
            } else {
                exact.floor()
            };
            // Go converts to `int` and the caller to `int32`; `as` does the
            // same truncation for values that fit.
            Ok(rounded as i64 as i32)
        }
    }
}

/// Upstream `ResolveFenceposts`: the surge (rounded up) and the
/// unavailability (rounded down) for `desired` replicas. A missing value
/// counts as 0. If both come out 0, the unavailability becomes 1, otherwise
/// the rollout could never make a step ("surge might not work due to quota").
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), FencepostError> {
    let zero = IntOrString::Int(0);
    let surge =
        get_scaled_value_from_int_or_percent(Some(max_surge.unwrap_or(&zero)), desired, true)?;
    let mut unavailable = get_scaled_value_from_int_or_percent(
        Some(max_unavailable.unwrap_or(&zero)),
        desired,
        false,
    )?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// Upstream `MaxSurge`: 0 for Recreate; an invalid value (which validation
/// prevents) also counts as 0.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(surge, unavailable, replicas(d))
        .map(|(surge, _)| surge)
        .unwrap_or(0)
}

/// Upstream `MaxUnavailable`: 0 for Recreate and for 0 replicas, and never
/// more than `replicas` (100% of 10 is 10, but "1" of 0 replicas is 0).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    let unavailable = resolve_fenceposts(surge, unavailable, desired)
        .map(|(_, unavailable)| unavailable)
        .unwrap_or(0);
    unavailable.min(desired)
}

/// Upstream `MinAvailable`: the pods that must stay available during a
/// rolling update.
pub fn min_available(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    replicas(d) - max_unavailable(d)
}
// ANCHOR_END: fenceposts

/// `spec.strategy.rollingUpdate.{maxSurge, maxUnavailable}` as given.
pub fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::tests::deployment;

    fn v(s: &str) -> IntOrString {
        match s.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(s.to_string()),
        }
    }

    #[test]
    fn scaled_values() {
        // (value, total, round_up, expected); upstream intstr tests plus ours.
        let cases: &[(&str, i32, bool, i32)] = &[
            ("123", 100, true, 123),
            ("90%", 100, true, 90),
            ("90%", 95, true, 86),
            ("90%", 95, false, 85),
            ("25%", 10, true, 3),
            ("25%", 10, false, 2),
            ("0%", 0, true, 0),
            ("100%", 0, false, 0),
            ("33%", 3, true, 1),
            ("33%", 3, false, 0),
            ("+5%", 100, false, 5),
        ];
        for &(value, total, round_up, expected) in cases {
            assert_eq!(
                get_scaled_value_from_int_or_percent(Some(&v(value)), total, round_up),
                Ok(expected),
                "{value} of {total}, round_up={round_up}"
            );
        }
    }

    #[test]
    fn scaled_value_errors() {
        assert_eq!(
            get_scaled_value_from_int_or_percent(None, 10, true),
            Err(FencepostError::Nil)
        );
        assert_eq!(
            get_scaled_value_from_int_or_percent(Some(&IntOrString::String("90".into())), 10, true)
                .unwrap_err(),
            FencepostError::NotAPercentage,
            "a string must end in %"
        );
        for bad in ["%", "#%", "1.5%", "oops"] {
            assert!(
                get_scaled_value_from_int_or_percent(Some(&v(bad)), 10, true).is_err(),
                "{bad}"
            );
        }
    }

    /// Upstream `TestResolveFenceposts`, plus the docs' default.
    #[test]
    fn resolve_fenceposts_table() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            i32,
            Option<(i32, i32)>,
        );
        let cases: &[Case] = &[
            (Some("25%"), Some("25%"), 10, Some((3, 2))),
            (Some("0%"), Some("0%"), 0, Some((0, 1))),
            (Some("39%"), Some("39%"), 10, Some((4, 3))),
            (Some("oops"), Some("39%"), 10, None),
            (Some("55%"), Some("urg"), 10, None),
            (None, Some("39%"), 10, Some((0, 3))),
            (Some("39%"), None, 10, Some((4, 0))),
            (None, None, 10, Some((0, 1))),
            (Some("1"), Some("0"), 3, Some((1, 0))),
            (Some("0"), Some("1"), 10, Some((0, 1))),
        ];
        for &(surge, unavailable, desired, expected) in cases {
            let (s, u) = (surge.map(v), unavailable.map(v));
            let got = resolve_fenceposts(s.as_ref(), u.as_ref(), desired);
            assert_eq!(got.ok(), expected, "{surge:?}/{unavailable:?} of {desired}");
        }
    }

    #[test]
    fn deployment_level_values() {
        // (replicas, surge, unavailable) -> (MaxSurge, MaxUnavailable, MinAvailable)
        let cases = [
            (10, "25%", "25%", (3, 2, 8)),
            (3, "1", "0", (1, 0, 3)),
            (10, "0", "1", (0, 1, 9)),
            (5, "100%", "0", (5, 0, 5)),
            (0, "25%", "25%", (0, 0, 0)),
            // Validation forbids 0/0 literally, but percentages can round to 0.
            (3, "10%", "10%", (1, 0, 3)),
            (1, "0%", "0%", (0, 1, 0)),
            // An unavailability above replicas is capped at replicas.
            (2, "0", "5", (0, 2, 0)),
        ];
        for (n, surge, unavailable, expected) in cases {
            let d = deployment(n, surge, unavailable);
            assert_eq!(
                (max_surge(&d), max_unavailable(&d), min_available(&d)),
                expected,
                "{n} @ {surge}/{unavailable}"
            );
        }
        // Recreate neither surges nor tolerates unavailability.
        let mut d = deployment(10, "25%", "25%");
        d.spec.as_mut().unwrap().strategy.as_mut().unwrap().type_ = Some("Recreate".into());
        assert_eq!(
            (max_surge(&d), max_unavailable(&d), min_available(&d)),
            (0, 0, 0)
        );
        // Invalid values are swallowed as 0 (then 0/0 becomes 0/1).
        let d = deployment(10, "oops", "25%");
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
    }
}
