//! Sign-up rate profiles: how many sign-ups a minute a wave brings, over the run.
//!
//! A profile is a list of segments, each a rate (or a linear ramp between two rates) held for a
//! share of the run or for a fixed time:
//!
//! ```text
//! 130/h 10%, 130/h..2000/h 10%, 2000/h 20%, 5000/h 30%, 10000/h 30%
//! 2/s 30s, 2/s..20/s 1m, 20/s 30s
//! ```
//!
//! Rates take `/s`, `/min` or `/h`; durations `%` (of `--seconds`) or `s`/`m` — not both kinds in
//! one profile. The multiplier scales every rate. The arrivals are spaced deterministically (the
//! k-th sign-up starts when the integral of the rate reaches k − ½), so two runs with the same
//! profile offer exactly the same load.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

/// The November 2022 wave, network-wide, as reported at the time: a baseline of about 130
/// sign-ups an hour, then 2,000/h, 5,000/h and peaks of 10,000/h — compressed into the run.
pub const NOV2022: &str = "130/h 10%, 130/h..2000/h 10%, 2000/h 15%, 2000/h..5000/h 10%, \
     5000/h 15%, 5000/h..10000/h 10%, 10000/h 15%, 10000/h..5000/h 15%";

/// The same shape as one instance saw it: the network's steps scaled so the peak is the
/// ~3,000/h that single large instances reported.
pub const NOV2022_INSTANCE: &str = "130/h 10%, 130/h..600/h 10%, 600/h 15%, 600/h..1500/h 10%, \
     1500/h 15%, 1500/h..3000/h 10%, 3000/h 15%, 3000/h..1500/h 15%";

/// The run length of a profile given in % when `--seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 120;

/// Built-in profiles by name.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "nov2022" => Some(NOV2022),
        "nov2022-instance" => Some(NOV2022_INSTANCE),
        _ => None,
    }
}

/// One piece of a profile: a rate ramping linearly from `from` to `to` (per second) for
/// `seconds`.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub from: f64,
    pub to: f64,
    pub seconds: f64,
}

/// A parsed profile, with durations resolved and the multiplier applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub segments: Vec<Segment>,
}

fn parse_rate(text: &str) -> anyhow::Result<f64> {
    let text = text.trim();
    let (number, per) = text
        .split_once('/')
        .with_context(|| format!("rate {text:?} needs a unit: /s, /min or /h (e.g. 2000/h)"))?;
    let value: f64 = number
        .trim()
        .replace('_', "")
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("rate {text:?}: {number:?} is not a number ≥ 0"))?;
    let per_second = match per.trim() {
        "s" => value,
        "min" | "m" => value / 60.0,
        "h" => value / 3600.0,
        other => bail!("rate {text:?}: unknown unit /{other} (use /s, /min or /h)"),
    };
    Ok(per_second)
}

enum Length {
    Share(f64),
    Seconds(f64),
}

fn parse_length(text: &str) -> anyhow::Result<Length> {
    let text = text.trim();
    let number = |s: &str| -> anyhow::Result<f64> {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .with_context(|| format!("duration {text:?}: {s:?} is not a number > 0"))
    };
    if let Some(p) = text.strip_suffix('%') {
        Ok(Length::Share(number(p)? / 100.0))
    } else if let Some(s) = text.strip_suffix("min").or_else(|| text.strip_suffix('m')) {
        Ok(Length::Seconds(number(s)? * 60.0))
    } else if let Some(s) = text.strip_suffix('s') {
        Ok(Length::Seconds(number(s)?))
    } else {
        bail!("duration {text:?} needs a unit: % (of --seconds), s or m")
    }
}

impl Profile {
    /// Parses `spec` (a built-in name or segments). `run_seconds` resolves `%` durations
    /// ([`DEFAULT_SECONDS`] if not given); a profile of fixed durations must not be given one.
    pub fn parse(spec: &str, run_seconds: Option<u64>, multiplier: f64) -> anyhow::Result<Self> {
        ensure!(
            multiplier.is_finite() && multiplier > 0.0,
            "--multiplier must be a number > 0, not {multiplier}"
        );
        let text = builtin(spec.trim()).unwrap_or(spec);
        let mut raw = Vec::new();
        for (i, piece) in text.split(',').enumerate() {
            let piece = piece.trim();
            let n = i + 1;
            let (rates, length) = piece.rsplit_once(char::is_whitespace).with_context(|| {
                format!("segment {n} {piece:?}: expected `RATE DURATION`, e.g. `2000/h 20%` or `2/s..20/s 60s`")
            })?;
            let (from, to) = match rates.split_once("..") {
                Some((a, b)) => (parse_rate(a), parse_rate(b)),
                None => (parse_rate(rates), parse_rate(rates)),
            };
            let from = from.with_context(|| format!("segment {n} {piece:?}"))?;
            let to = to.with_context(|| format!("segment {n} {piece:?}"))?;
            let length = parse_length(length).with_context(|| format!("segment {n} {piece:?}"))?;
            raw.push((from * multiplier, to * multiplier, length));
        }
        let shares = raw
            .iter()
            .filter(|(_, _, l)| matches!(l, Length::Share(_)))
            .count();
        ensure!(
            shares == 0 || shares == raw.len(),
            "profile mixes % durations with s/m durations: use one kind"
        );
        let segments: Vec<Segment> = if shares > 0 {
            let total: f64 = raw
                .iter()
                .map(|(_, _, l)| match l {
                    Length::Share(s) => *s,
                    Length::Seconds(_) => 0.0,
                })
                .sum();
            ensure!(
                (total - 1.0).abs() < 0.005,
                "profile shares add up to {:.1} %, not 100 %",
                total * 100.0
            );
            let seconds = run_seconds.unwrap_or(DEFAULT_SECONDS) as f64;
            raw.into_iter()
                .map(|(from, to, l)| Segment {
                    from,
                    to,
                    seconds: match l {
                        Length::Share(s) => s / total * seconds,
                        Length::Seconds(s) => s,
                    },
                })
                .collect()
        } else {
            ensure!(
                run_seconds.is_none(),
                "this profile gives its own durations; drop --seconds (or give durations in %)"
            );
            raw.into_iter()
                .map(|(from, to, l)| Segment {
                    from,
                    to,
                    seconds: match l {
                        Length::Seconds(s) => s,
                        Length::Share(_) => 0.0,
                    },
                })
                .collect()
        };
        let profile = Profile { segments };
        ensure!(
            profile.seconds() <= 3600.0,
            "the profile lasts {:.0} s; runs are limited to 3600 s",
            profile.seconds()
        );
        Ok(profile)
    }

    /// The run's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.segments.iter().map(|s| s.seconds).sum()
    }

    /// The offered rate (per second) at `t` seconds into the run.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.segments {
            if t < start + s.seconds {
                let f = (t - start) / s.seconds;
                return s.from + (s.to - s.from) * f;
            }
            start += s.seconds;
        }
        0.0
    }

    /// The arrivals the profile offers in total.
    pub fn expected_arrivals(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| (s.from + s.to) / 2.0 * s.seconds)
            .sum()
    }

    /// The peak rate, per second.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.from.max(s.to))
            .fold(0.0, f64::max)
    }

    /// When each arrival starts, from the run's start; at most `limit` arrivals.
    pub fn schedule(&self, limit: usize) -> anyhow::Result<Vec<Duration>> {
        let expected = self.expected_arrivals();
        ensure!(
            expected <= limit as f64 + 0.5,
            "the profile offers {expected:.0} requests, more than --max-requests {limit}; \
             lower --multiplier or raise --max-requests"
        );
        let mut out = Vec::with_capacity(expected.ceil() as usize + 1);
        // Integrate in 1 ms steps: exact enough for rates up to hundreds per second.
        let step = 0.001;
        let total = self.seconds();
        let mut integral = 0.0;
        let mut t = 0.0;
        while t < total && out.len() < limit {
            integral += self.rate_at(t + step / 2.0) * step;
            t += step;
            while integral >= out.len() as f64 + 0.5 && out.len() < limit {
                out.push(Duration::from_secs_f64(t));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_peak_where_reported() {
        let p = Profile::parse("nov2022", Some(3600), 1.0).unwrap();
        assert!((p.peak() * 3600.0 - 10_000.0).abs() < 1e-6);
        assert!((p.seconds() - 3600.0).abs() < 1e-6);
        let p = Profile::parse("nov2022-instance", Some(100), 2.0).unwrap();
        assert!((p.peak() * 3600.0 - 6_000.0).abs() < 1e-6);
    }

    #[test]
    fn schedule_matches_the_integral() {
        let p = Profile::parse("10/s 50%, 10/s..30/s 50%", Some(10), 1.0).unwrap();
        assert!((p.expected_arrivals() - 150.0).abs() < 1e-9);
        let s = p.schedule(1000).unwrap();
        assert_eq!(s.len(), 150);
        // First arrival after half an interval; the first 5 s hold 50.
        assert!((s[0].as_secs_f64() - 0.05).abs() < 0.002);
        assert_eq!(s.iter().filter(|d| d.as_secs_f64() <= 5.0).count(), 50);
        assert!(p.schedule(100).is_err());
    }

    #[test]
    fn fixed_durations_and_units() {
        let p = Profile::parse("120/min 30s, 2/s..4/s 1m", None, 1.0).unwrap();
        assert_eq!(p.seconds(), 90.0);
        assert!((p.rate_at(10.0) - 2.0).abs() < 1e-9);
        assert!((p.rate_at(60.0) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_profiles_say_what_to_fix() {
        let err = |spec: &str, secs| {
            format!(
                "{:#}",
                Profile::parse(spec, secs, 1.0).expect_err("should be refused")
            )
        };
        assert!(err("2000 20%", Some(60)).contains("needs a unit"));
        assert!(err("2000/d 100%", Some(60)).contains("unknown unit"));
        assert!(err("2000/h", Some(60)).contains("expected `RATE DURATION`"));
        assert!(err("1/s 50%, 1/s 10s", Some(60)).contains("mixes"));
        assert!(err("1/s 50%, 1/s 40%", Some(60)).contains("not 100 %"));
        assert_eq!(
            Profile::parse("1/s 100%", None, 1.0).unwrap().seconds(),
            120.0
        );
        assert!(err("1/s 10s", Some(10)).contains("drop --seconds"));
        assert!(err("1/s 100m", None).contains("3600"));
        assert!(err("abc/s 100%", Some(60)).contains("not a number"));
        assert!(
            format!(
                "{:#}",
                Profile::parse("1/s 100%", Some(6), -1.0).unwrap_err()
            )
            .contains("--multiplier")
        );
    }
}
