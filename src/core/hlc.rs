//! The hybrid logical clock: a non-negative i64 `(wall_ms << 16) | counter`.
//!
//! Invariants: `tick` returns a value strictly greater than the high-water mark it is given,
//! whatever the wall clock says; `observe` never lowers the mark. The caller persists the mark
//! (in the database, inside the writing transaction) so a restart cannot reuse a version.

use super::merge::VERSION_MAX;
use std::fmt;

pub const COUNTER_BITS: u32 = 16;
/// Largest wall time the clock carries (2^46 ms, about the year 4199): the versions it makes
/// stay within what a peer merges (`merge::VERSION_MAX`).
pub const WALL_MS_MAX: i64 = VERSION_MAX >> COUNTER_BITS;
/// Default limit on how far ahead of our wall clock a merged version may be (one hour).
pub const DRIFT_MS_MAX_DEFAULT: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockError {
    /// The clock reached i64::MAX: no further version can be produced.
    Exhausted,
    /// A remote version is further ahead of our wall clock than the limit allows.
    Drift { remote_wall_ms: i64, local_wall_ms: i64, drift_ms_max: i64 },
}

impl fmt::Display for ClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockError::Exhausted => write!(
                f,
                "the hybrid logical clock is exhausted: its next version would pass 2^62, which peers refuse to merge \
                 (the wall clock says a year past 4199, or a change merged with hlc-max-drift-ms = 0 carried a version that high)"
            ),
            ClockError::Drift { remote_wall_ms, local_wall_ms, drift_ms_max } => write!(
                f,
                "change version is {} ms ahead of this replica's clock (limit hlc-max-drift-ms = {}): if this device's \
                 clock is behind, set it right; else the sender's is ahead (raise the limit with \
                 crsql_config_set('hlc-max-drift-ms', ms), 0 for none, to take its changes)",
                remote_wall_ms.saturating_sub(*local_wall_ms),
                drift_ms_max
            ),
        }
    }
}

/// The wall-clock part of a version.
pub fn wall_ms(version: i64) -> i64 {
    version >> COUNTER_BITS
}

/// A version for a new transaction: greater than `hwm`, and at least the wall clock; never
/// past `VERSION_MAX`, which peers refuse (until 2026-12-07 a tick went on to i64::MAX, and a
/// replica whose mark a merge had raised to VERSION_MAX wrote changes no peer would take).
pub fn tick(hwm: i64, wall_ms_now: i64) -> Result<i64, ClockError> {
    let from_wall = wall_ms_now.clamp(0, WALL_MS_MAX) << COUNTER_BITS;
    let next = hwm.max(0).checked_add(1).ok_or(ClockError::Exhausted)?;
    Some(next.max(from_wall)).filter(|&v| v <= VERSION_MAX).ok_or(ClockError::Exhausted)
}

/// The high-water mark after seeing a remote version.
pub fn observe(hwm: i64, remote: i64) -> i64 {
    hwm.max(remote)
}

/// Refuses a remote version whose wall time is more than `drift_ms_max` ahead of `wall_ms_now`,
/// unless the clock has reached it already (`remote <= hwm`: it moves nothing; a replica whose
/// clock a merged change had moved ahead refused its own later writes, relayed back to it).
/// The limit stays relative to the wall clock, so merges cannot ratchet the clock up step by
/// step. A limit of 0 disables the check. The wall clock is read only when a version is past
/// the mark (`wall_ms_now`: a merge's changes are mostly at versions the first one reached).
pub fn check_drift(remote: i64, hwm: i64, wall_ms_now: impl FnOnce() -> i64, drift_ms_max: i64) -> Result<(), ClockError> {
    if drift_ms_max <= 0 || remote <= hwm {
        return Ok(());
    }
    let wall_ms_now = wall_ms_now();
    let remote_wall_ms = wall_ms(remote);
    if remote_wall_ms.saturating_sub(wall_ms_now) > drift_ms_max {
        return Err(ClockError::Drift { remote_wall_ms, local_wall_ms: wall_ms_now, drift_ms_max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tick_uses_wall_clock_then_counter() {
        assert_eq!(tick(0, 5).unwrap(), 5 << 16);
        assert_eq!(tick(5 << 16, 5).unwrap(), (5 << 16) + 1);
        // The wall clock jumped back: the counter carries on.
        assert_eq!(tick((9 << 16) + 3, 5).unwrap(), (9 << 16) + 4);
        assert_eq!(tick(i64::MAX, 5), Err(ClockError::Exhausted));
        // Never past what a peer merges: the wall clock's part is capped there, and a mark
        // at it cannot tick.
        assert_eq!(tick(0, i64::MAX).unwrap(), VERSION_MAX);
        assert_eq!(tick(VERSION_MAX - 1, 5).unwrap(), VERSION_MAX);
        assert_eq!(tick(VERSION_MAX, 5), Err(ClockError::Exhausted));
        assert_eq!(tick(VERSION_MAX, i64::MAX), Err(ClockError::Exhausted));
    }

    #[test]
    fn drift_limit() {
        let now = 1_000_000;
        assert!(check_drift((now + 3_600_000) << 16, 0, || now, DRIFT_MS_MAX_DEFAULT).is_ok());
        let err = check_drift((now + 3_600_001) << 16, 0, || now, DRIFT_MS_MAX_DEFAULT).unwrap_err();
        assert!(err.to_string().contains("3600001 ms ahead"), "{err}");
        assert!(check_drift(i64::MAX, 0, || now, 0).is_ok());
        // A version the clock has reached passes, however far ahead of the wall clock (which
        // is not read); one past it is measured against the wall clock, not the mark.
        let far = (now + 5_000) << 16;
        assert!(check_drift(far, far, || -> i64 { panic!("read the wall clock for a version the clock reached") }, 1_000).is_ok());
        assert!(check_drift(far - 7, far, || now, 1_000).is_ok());
        assert!(check_drift(far + 1, far, || now, 1_000).is_err());
    }

    proptest! {
        #[test]
        fn strictly_increasing_under_any_wall_clock(
            walls in proptest::collection::vec(-10i64..(1i64 << 47) + 10, 1..50),
            remotes in proptest::collection::vec(0i64..(1i64 << 62), 1..50),
        ) {
            let mut hwm = 0i64;
            let mut last = -1i64;
            for (i, wall) in walls.iter().enumerate() {
                // (At the end of the clock a tick refuses, and the mark stays.)
                let Ok(v) = tick(hwm, *wall) else {
                    prop_assert!(hwm == VERSION_MAX);
                    continue;
                };
                prop_assert!(v > hwm && v > last && (0..=VERSION_MAX).contains(&v));
                last = v;
                hwm = v;
                if let Some(r) = remotes.get(i) {
                    let before = hwm;
                    hwm = observe(hwm, *r);
                    prop_assert!(hwm >= before && hwm >= *r);
                }
            }
        }
    }
}
