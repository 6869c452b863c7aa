//! A spending budget per period: USD spent since the period began, against a hard limit
//! (refuse) and an optional soft one (report once per period).
//!
//! Periods come from the wall clock, never from when the gateway started, so every replica
//! (and a restarted one) agrees on them: a duration period is aligned to the Unix epoch
//! (`"1d"` is the UTC day), `"monthly"` is the calendar month in UTC. The period rolls over
//! lazily, the first time the budget is looked at past its end. Spend is settled after the
//! answer, so requests admitted while the budget still had room may take it past the limit —
//! by at most what those requests in flight cost.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::BudgetPeriod;

const DAY_SECS: u64 = 86_400;

/// A period as Unix seconds, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// The period of `period` that holds `now`.
pub fn span(period: BudgetPeriod, now: SystemTime) -> Span {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match period {
        BudgetPeriod::Every(length) => {
            let length = length.as_secs().max(1);
            let start = secs - secs % length;
            Span {
                start,
                end: start + length,
            }
        }
        BudgetPeriod::Monthly => {
            let (year, month, _) = civil_from_days((secs / DAY_SECS) as i64);
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            let day = |y, m| days_from_civil(y, m, 1).max(0) as u64 * DAY_SECS;
            Span {
                start: day(year, month),
                end: day(next_year, next_month),
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// What a spend did to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// This spend crossed the soft budget (reported once per period).
    pub soft_crossed: bool,
}

/// One key's or team's budget.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: f64,
    soft: Option<f64>,
    period: BudgetPeriod,
    /// The period spent in; `None` before the first look.
    current: Option<Span>,
    spent: f64,
    soft_reported: bool,
}

impl Budget {
    pub fn new(limit: f64, soft: Option<f64>, period: BudgetPeriod) -> Self {
        Self {
            limit,
            soft,
            period,
            current: None,
            spent: 0.0,
            soft_reported: false,
        }
    }

    /// Starts the period holding `now` when the current one is over: nothing spent yet.
    fn roll(&mut self, now: SystemTime) -> Span {
        let wanted = span(self.period, now);
        if self.current != Some(wanted) {
            self.current = Some(wanted);
            self.spent = 0.0;
            self.soft_reported = false;
        }
        wanted
    }

    /// Admits while the period's spend is below the limit; refused, until the period ends.
    pub fn check(&mut self, now: SystemTime) -> Result<(), Duration> {
        let span = self.roll(now);
        if self.spent < self.limit {
            return Ok(());
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Err(Duration::from_secs(span.end.saturating_sub(secs).max(1)))
    }

    /// Adds `usd` to the period holding `now`.
    pub fn spend(&mut self, usd: f64, now: SystemTime) -> Spent {
        self.roll(now);
        if usd.is_finite() && usd > 0.0 {
            self.spent += usd;
        }
        let soft_crossed = !self.soft_reported && self.soft.is_some_and(|soft| self.spent >= soft);
        self.soft_reported |= soft_crossed;
        Spent { soft_crossed }
    }

    /// Sets the spend of the period holding `now` to `spent`, as another holder of this budget
    /// counted it (the shared store): a soft budget already crossed is not reported again.
    pub fn observe(&mut self, spent: f64, now: SystemTime) {
        self.roll(now);
        if spent.is_finite() && spent >= 0.0 {
            self.spent = spent;
            self.soft_reported |= self.soft.is_some_and(|soft| spent >= soft);
        }
    }

    pub fn period(&self) -> BudgetPeriod {
        self.period
    }

    /// USD left in the period holding `now` (not below 0).
    pub fn remaining(&self, now: SystemTime) -> f64 {
        let spent = match self.current {
            Some(current) if current == span(self.period, now) => self.spent,
            _ => 0.0,
        };
        (self.limit - spent).max(0.0)
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// USD spent in the period holding `now`.
    pub fn spent(&self, now: SystemTime) -> f64 {
        match self.current {
            Some(current) if current == span(self.period, now) => self.spent,
            _ => 0.0,
        }
    }

    pub fn soft(&self) -> Option<f64> {
        self.soft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-12-06T20:00:00Z and friends, as Unix seconds.
    fn utc(y: i64, m: i64, d: i64, h: u64) -> u64 {
        days_from_civil(y, m, d) as u64 * DAY_SECS + h * 3600
    }

    #[test]
    fn calendar_months_in_utc() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(utc(2026, 12, 6, 20), 1_796_587_200);
        let cases = [
            // now, start, end
            (
                utc(2026, 12, 6, 20),
                utc(2026, 12, 1, 0),
                utc(2027, 1, 1, 0),
            ),
            (utc(2028, 2, 29, 23), utc(2028, 2, 1, 0), utc(2028, 3, 1, 0)),
            (utc(2027, 2, 28, 0), utc(2027, 2, 1, 0), utc(2027, 3, 1, 0)),
            (utc(2100, 3, 1, 0), utc(2100, 3, 1, 0), utc(2100, 4, 1, 0)),
            (
                utc(2026, 1, 31, 23) + 3599,
                utc(2026, 1, 1, 0),
                utc(2026, 2, 1, 0),
            ),
        ];
        for (now, start, end) in cases {
            assert_eq!(
                span(BudgetPeriod::Monthly, at(now)),
                Span { start, end },
                "{now}"
            );
        }
        for days in [0, 59, 60, 365, 10_956, 20_000, 47_482, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn duration_periods_align_to_the_epoch() {
        let day = BudgetPeriod::Every(Duration::from_secs(DAY_SECS));
        let now = utc(2026, 12, 6, 20);
        assert_eq!(
            span(day, at(now)),
            Span {
                start: utc(2026, 12, 6, 0),
                end: utc(2026, 12, 7, 0)
            }
        );
        let hour = BudgetPeriod::Every(Duration::from_secs(3600));
        assert_eq!(span(hour, at(now + 59)).start, now);
    }

    #[test]
    fn refuses_once_spent_until_the_period_ends() {
        let hour = BudgetPeriod::Every(Duration::from_secs(3600));
        let t0 = utc(2026, 12, 6, 20);
        let mut budget = Budget::new(1.0, Some(0.5), hour);
        assert!(budget.check(at(t0)).is_ok());
        assert_eq!(
            budget.spend(0.4, at(t0)),
            Spent {
                soft_crossed: false
            }
        );
        assert_eq!(budget.spend(0.2, at(t0 + 1)), Spent { soft_crossed: true });
        assert_eq!(
            budget.spend(0.1, at(t0 + 2)),
            Spent {
                soft_crossed: false
            }
        );
        assert!((budget.remaining(at(t0 + 2)) - 0.3).abs() < 1e-9);
        assert!(budget.check(at(t0 + 3)).is_ok());
        budget.spend(0.5, at(t0 + 3));
        assert_eq!(budget.remaining(at(t0 + 3)), 0.0);
        assert_eq!(budget.check(at(t0 + 600)), Err(Duration::from_secs(3000)));
        // The next hour starts from nothing, and may cross the soft budget again.
        assert_eq!(budget.remaining(at(t0 + 3600)), 1.0);
        assert!(budget.check(at(t0 + 3600)).is_ok());
        assert_eq!(
            budget.spend(0.6, at(t0 + 3601)),
            Spent { soft_crossed: true }
        );
        // Nonsense spends are ignored.
        budget.spend(f64::NAN, at(t0 + 3602));
        budget.spend(-5.0, at(t0 + 3602));
        assert!((budget.remaining(at(t0 + 3602)) - 0.4).abs() < 1e-9);
    }
}
