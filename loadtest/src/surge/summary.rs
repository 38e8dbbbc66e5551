//! Turns what a run recorded into the numbers people and rules look at: totals and percentiles
//! per operation, scenario measurements, and per-interval series for the report's charts.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::record::{Bin, Collected, Outcome, percentile};
use super::slo::{Catalogue, PERCENTILES, Slo};

/// What a scenario tells the summary besides the samples.
#[derive(Debug, Default)]
pub struct RunInfo {
    pub scenario: &'static str,
    pub target: String,
    pub parameters: Value,
    /// How long load was offered, in seconds: throughput is counted over it.
    pub load_seconds: f64,
    /// The offered rate over time (seconds, per second), when the scenario has a schedule.
    pub offered: Vec<(f64, f64)>,
    /// The operation the throughput chart follows (the one `offered` counts); all when None.
    pub headline_op: Option<&'static str>,
    /// Shares the scenario computed itself (`delivery-loss`), 0..=1.
    pub shares: BTreeMap<&'static str, f64>,
    /// Other facts worth showing (seeding time, late starts).
    pub facts: Map<String, Value>,
    pub notes: Vec<String>,
}

/// One chartable series per interval.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Interval starts, in seconds.
    pub t: Vec<f64>,
    pub ok_per_s: Vec<f64>,
    pub limited_per_s: Vec<f64>,
    pub errors_per_s: Vec<f64>,
    pub error_share: Vec<f64>,
    pub limited_share: Vec<f64>,
    pub p50: Vec<f64>,
    pub p90: Vec<f64>,
    pub p99: Vec<f64>,
}

/// The summary of a run, ready for JSON, the report and the rules.
#[derive(Debug)]
pub struct Summary {
    pub json: Value,
    /// "all" first, then each operation.
    pub series: Vec<(String, Series)>,
    pub bin_seconds: u64,
    pub measures: BTreeMap<&'static str, Vec<(f64, f32)>>,
    pub info: RunInfo,
    pub slo: Vec<Value>,
    pub pass: bool,
}

fn merge(bins: &BTreeMap<u64, Bin>, into: &mut BTreeMap<u64, Bin>, width: u64) {
    for (second, bin) in bins {
        let slot = into.entry(second / width * width).or_default();
        for (i, c) in bin.counts.iter().enumerate() {
            slot.counts[i] += c;
        }
        slot.latencies_ms.extend_from_slice(&bin.latencies_ms);
    }
}

fn totals(bins: &BTreeMap<u64, Bin>, load_seconds: f64) -> (Value, BTreeMap<String, f64>) {
    let mut counts = [0u64; 6];
    let mut latencies = Vec::new();
    for bin in bins.values() {
        for (i, c) in bin.counts.iter().enumerate() {
            counts[i] += c;
        }
        latencies.extend_from_slice(&bin.latencies_ms);
    }
    latencies.sort_by(f32::total_cmp);
    let total: u64 = counts.iter().sum();
    let share = |n: u64| {
        if total == 0 {
            f64::NAN
        } else {
            n as f64 / total as f64
        }
    };
    let errors: u64 = Outcome::ALL
        .iter()
        .filter(|o| o.is_error())
        .map(|o| counts[*o as usize])
        .sum();
    let mut metrics = BTreeMap::new();
    let mut latency = Map::new();
    for (name, p) in PERCENTILES {
        let v = percentile(&latencies, p);
        metrics.insert(name.to_string(), v);
        latency.insert(name.into(), round(v, 1));
    }
    metrics.insert("error-rate".into(), share(errors));
    metrics.insert("429-rate".into(), share(counts[Outcome::Limited as usize]));
    // What the server failed to answer: 5xx and time-outs (4xx are the client's own).
    let failed = counts[Outcome::ServerError as usize] + counts[Outcome::Timeout as usize];
    metrics.insert("5xx-rate".into(), share(failed));
    let throughput = counts[0] as f64 / load_seconds.max(1e-9);
    metrics.insert("throughput".into(), throughput);
    let by_outcome: Map<String, Value> = Outcome::ALL
        .iter()
        .filter(|o| counts[**o as usize] > 0)
        .map(|o| (o.name().to_string(), json!(counts[*o as usize])))
        .collect();
    let json = json!({
        "requests": total,
        "responses": by_outcome,
        "error_rate": round(share(errors), 4),
        "rate_429": round(share(counts[Outcome::Limited as usize]), 4),
        "ok_per_s": round(throughput, 2),
        "latency_ms": latency,
    });
    (json, metrics)
}

fn series(bins: &BTreeMap<u64, Bin>, width: u64, end: u64) -> Series {
    let mut s = Series::default();
    let w = width as f64;
    let mut start = 0;
    while start < end.max(1) {
        let bin = bins.get(&start).cloned().unwrap_or_default();
        let mut lat = bin.latencies_ms;
        lat.sort_by(f32::total_cmp);
        let total: u64 = bin.counts.iter().sum();
        let errors: u64 = Outcome::ALL
            .iter()
            .filter(|o| o.is_error())
            .map(|o| bin.counts[*o as usize])
            .sum();
        let limited = bin.counts[Outcome::Limited as usize];
        let share = |n: u64| {
            if total == 0 {
                f64::NAN
            } else {
                n as f64 / total as f64
            }
        };
        s.t.push(start as f64);
        s.ok_per_s.push(bin.counts[0] as f64 / w);
        s.limited_per_s.push(limited as f64 / w);
        s.errors_per_s.push(errors as f64 / w);
        s.error_share.push(share(errors));
        s.limited_share.push(share(limited));
        s.p50.push(percentile(&lat, 0.5));
        s.p90.push(percentile(&lat, 0.9));
        s.p99.push(percentile(&lat, 0.99));
        start += width;
    }
    s
}

pub fn round(v: f64, digits: i32) -> Value {
    if v.is_nan() {
        return Value::Null;
    }
    let f = 10f64.powi(digits);
    json!((v * f).round() / f)
}

impl Summary {
    /// Summarises `data`, judging `rules`.
    pub fn build(
        info: RunInfo,
        data: Collected,
        rules: &[Slo],
        catalogue: &Catalogue,
        started_at: &str,
        machine: &str,
    ) -> Self {
        let last_second = data
            .requests
            .values()
            .filter_map(|bins| bins.keys().next_back())
            .max()
            .copied()
            .unwrap_or(0)
            .max(info.load_seconds.ceil() as u64);
        // At most ~300 points a chart.
        let width = (last_second / 300 + 1).max(1);
        let end = last_second + 1;
        let mut metrics = BTreeMap::new();
        let mut all_bins = BTreeMap::new();
        let mut per_op = Map::new();
        let mut series_list = Vec::new();
        for op in &catalogue.ops {
            let bins = data.requests.get(op).cloned().unwrap_or_default();
            let (j, m) = totals(&bins, info.load_seconds);
            for (k, v) in m {
                metrics.insert(format!("{k}({op})"), v);
            }
            per_op.insert((*op).to_string(), j);
            let mut widened = BTreeMap::new();
            merge(&bins, &mut widened, width);
            series_list.push(((*op).to_string(), series(&widened, width, end)));
            merge(&bins, &mut all_bins, width);
        }
        let (all_json, all_metrics) = totals(&all_bins, info.load_seconds);
        metrics.extend(all_metrics);
        series_list.insert(0, ("all".into(), series(&all_bins, width, end)));
        let mut measures_json = Map::new();
        for name in &catalogue.measures {
            let mut values: Vec<f32> = data
                .measures
                .get(name)
                .map(|v| v.iter().map(|(_, x)| *x).collect())
                .unwrap_or_default();
            values.sort_by(f32::total_cmp);
            let mut m = Map::new();
            m.insert("count".into(), json!(values.len()));
            for (p, q) in PERCENTILES {
                let v = percentile(&values, q);
                metrics.insert(format!("{name}-{p}"), v);
                m.insert(format!("{p}_ms"), round(v, 1));
            }
            measures_json.insert((*name).to_string(), Value::Object(m));
        }
        for (name, v) in &info.shares {
            metrics.insert((*name).to_string(), *v);
        }
        let slo: Vec<Value> = rules
            .iter()
            .map(|r| r.check(metrics.get(&r.metric).copied().unwrap_or(f64::NAN)))
            .collect();
        let pass = slo.iter().all(|r| r["pass"] == true);
        let json = json!({
            "scenario": info.scenario,
            "started_at": started_at,
            "machine": machine,
            "target": info.target,
            "parameters": info.parameters,
            "load_seconds": round(info.load_seconds, 1),
            "all": all_json,
            "operations": per_op,
            "measurements": measures_json,
            "shares": info.shares.iter().map(|(k, v)| ((*k).to_string(), round(*v, 4))).collect::<Map<_, _>>(),
            "facts": info.facts,
            "notes": info.notes,
            "slo": slo,
            "pass": pass,
        });
        Summary {
            json,
            series: series_list,
            bin_seconds: width,
            measures: data.measures,
            info,
            slo,
            pass,
        }
    }
}
