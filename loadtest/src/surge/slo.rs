//! Service-level objectives given on the command line (`--slo 'p99(signup)<500ms'`), checked
//! against the run's summary; any failure makes the exit code 1.
//!
//! A rule is `METRIC OP VALUE`: OP is `<`, `<=`, `>` or `>=`; METRIC is one of
//!
//! - `p50`, `p90`, `p95`, `p99`, `max`: latency of successful requests (all operations, or one:
//!   `p99(signup)`); VALUE in `ms` or `s`;
//! - `error-rate`, `429-rate`, `5xx-rate` (5xx answers and time-outs): share of requests
//!   (optionally of one operation); VALUE in `%` or as a fraction;
//! - `throughput`: successful requests per second over the load phase; VALUE in `/s`, `/min`, `/h`;
//! - a scenario measurement with a percentile, e.g. `fanout-p99`, `delivery-max`: in `ms` or `s`;
//! - a scenario's own share, e.g. `delivery-loss`: in `%`.

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

/// What kind of number a metric is, which decides the units its rule may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Milliseconds.
    Time,
    /// A share, 0..=1.
    Share,
    /// Per second.
    Rate,
}

/// The metrics a scenario will report, known before any load is sent so that a rule naming
/// anything else is refused up front.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    pub ops: Vec<&'static str>,
    pub measures: Vec<&'static str>,
    pub shares: Vec<&'static str>,
}

pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("max", 1.0),
];

impl Catalogue {
    /// Every metric name with its kind.
    pub fn names(&self) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        let scopes = std::iter::once(None).chain(self.ops.iter().map(Some));
        for scope in scopes {
            let suffix = scope.map(|op| format!("({op})")).unwrap_or_default();
            for (p, _) in PERCENTILES {
                out.push((format!("{p}{suffix}"), Kind::Time));
            }
            out.push((format!("error-rate{suffix}"), Kind::Share));
            out.push((format!("429-rate{suffix}"), Kind::Share));
            out.push((format!("5xx-rate{suffix}"), Kind::Share));
            out.push((format!("throughput{suffix}"), Kind::Rate));
        }
        for m in &self.measures {
            for (p, _) in PERCENTILES {
                out.push((format!("{m}-{p}"), Kind::Time));
            }
        }
        for s in &self.shares {
            out.push(((*s).to_string(), Kind::Share));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One parsed rule.
#[derive(Clone, Debug)]
pub struct Slo {
    pub text: String,
    pub metric: String,
    kind: Kind,
    cmp: Cmp,
    /// In the metric's base unit (ms, share, per second).
    limit: f64,
}

impl Slo {
    /// Parses `text`, checking the metric exists in `catalogue` and the unit fits it.
    pub fn parse(text: &str, catalogue: &Catalogue) -> anyhow::Result<Self> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, cmp, len) = [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ]
        .iter()
        .find_map(|(sym, cmp)| compact.find(sym).map(|i| (i, *cmp, sym.len())))
        .with_context(|| {
            format!("--slo {text:?}: expected METRIC<VALUE, e.g. 'p99<500ms' or 'error-rate<1%'")
        })?;
        let metric = compact[..at].to_string();
        let value = &compact[at + len..];
        let names = catalogue.names();
        let Some((_, kind)) = names.iter().find(|(n, _)| *n == metric) else {
            let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "--slo {text:?}: unknown metric {metric:?}; this scenario reports: {}",
                list.join(", ")
            );
        };
        let number = |s: &str| -> anyhow::Result<f64> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .with_context(|| format!("--slo {text:?}: {s:?} is not a number ≥ 0"))
        };
        let limit = match kind {
            Kind::Time => {
                if let Some(v) = value.strip_suffix("ms") {
                    number(v)?
                } else if let Some(v) = value.strip_suffix('s') {
                    number(v)? * 1000.0
                } else {
                    bail!(
                        "--slo {text:?}: {metric} is a time; give the limit in ms or s (e.g. 500ms)"
                    )
                }
            }
            Kind::Share => {
                let v = if let Some(v) = value.strip_suffix('%') {
                    number(v)? / 100.0
                } else {
                    number(value)?
                };
                ensure!(
                    v <= 1.0,
                    "--slo {text:?}: {metric} is a share; give it in % (e.g. 1%) or as a fraction ≤ 1"
                );
                v
            }
            Kind::Rate => {
                if let Some(v) = value.strip_suffix("/s") {
                    number(v)?
                } else if let Some(v) = value.strip_suffix("/min") {
                    number(v)? / 60.0
                } else if let Some(v) = value.strip_suffix("/h") {
                    number(v)? / 3600.0
                } else {
                    bail!(
                        "--slo {text:?}: {metric} is a rate; give it in /s, /min or /h (e.g. 50/s)"
                    )
                }
            }
        };
        Ok(Slo {
            text: text.to_string(),
            metric,
            kind: *kind,
            cmp,
            limit,
        })
    }

    /// Judges `observed` (NaN when nothing was measured: a failure).
    pub fn check(&self, observed: f64) -> Value {
        let pass = !observed.is_nan()
            && match self.cmp {
                Cmp::Lt => observed < self.limit,
                Cmp::Le => observed <= self.limit,
                Cmp::Gt => observed > self.limit,
                Cmp::Ge => observed >= self.limit,
            };
        let show = |v: f64| -> String {
            if v.is_nan() {
                return "nothing measured".into();
            }
            match self.kind {
                Kind::Time => format!("{v:.1} ms"),
                Kind::Share => format!("{:.2} %", v * 100.0),
                Kind::Rate => format!("{v:.2}/s"),
            }
        };
        json!({
            "rule": self.text,
            "metric": self.metric,
            "observed": if observed.is_nan() { Value::Null } else { json!(observed) },
            "observed_text": show(observed),
            "limit_text": show(self.limit),
            "pass": pass,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalogue {
        Catalogue {
            ops: vec!["signup"],
            measures: vec!["fanout"],
            shares: vec!["delivery-loss"],
        }
    }

    #[test]
    fn parses_and_judges() {
        let s = Slo::parse("p99(signup) < 0.5s", &cat()).unwrap();
        assert_eq!(s.check(499.0)["pass"], true);
        assert_eq!(s.check(500.0)["pass"], false);
        assert_eq!(s.check(f64::NAN)["pass"], false);
        let s = Slo::parse("error-rate<=1%", &cat()).unwrap();
        assert_eq!(s.check(0.01)["pass"], true);
        let s = Slo::parse("throughput>=120/min", &cat()).unwrap();
        assert_eq!(s.check(2.0)["pass"], true);
        assert_eq!(s.check(1.9)["pass"], false);
        assert!(Slo::parse("fanout-p99<10s", &cat()).is_ok());
        assert!(Slo::parse("delivery-loss<0.001", &cat()).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_judge() {
        let e = |t: &str| format!("{:#}", Slo::parse(t, &cat()).unwrap_err());
        assert!(e("p99(follow)<1s").contains("unknown metric"));
        assert!(e("p99 500ms").contains("expected METRIC<VALUE"));
        assert!(e("p99<500").contains("ms or s"));
        assert!(e("error-rate<150%").contains("fraction"));
        assert!(e("throughput>5").contains("/s"));
    }
}
