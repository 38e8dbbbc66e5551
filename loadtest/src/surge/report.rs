//! The report a person opens: one self-contained HTML page (inline SVG charts, no scripts, no
//! network) with the verdict, the rules, the totals, and charts of throughput, latency
//! percentiles and error/429 shares over time; beside it `summary.json` with the same numbers.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::summary::Summary;

const GREEN: &str = "#2e8b57";
const ORANGE: &str = "#e08a00";
const RED: &str = "#c8102e";
const BLUE: &str = "#1f6fb2";
const PURPLE: &str = "#7b3fa0";
const GREY: &str = "#888";

struct Line<'a> {
    name: &'a str,
    color: &'a str,
    dashed: bool,
    /// NaN values leave a gap.
    points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step giving about `n` ticks over `0..max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A line (or dot) chart in SVG. `dots` draws points instead of lines (for measurements).
fn chart(title: &str, y_label: &str, x_max: f64, lines: &[Line], dots: bool) -> String {
    let (w, h) = (1100.0, 280.0);
    let (left, right, top, bottom) = (70.0, 20.0, 34.0, 42.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let y_max_data = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_step = nice_step(if y_max_data > 0.0 { y_max_data } else { 1.0 }, 5.0);
    let y_max = ((y_max_data / y_step).ceil() * y_step).max(y_step);
    let x_max = x_max.max(1.0);
    let x_step = nice_step(x_max, 10.0).max(1.0);
    let sx = |x: f64| left + x / x_max * pw;
    let sy = |y: f64| top + ph - y / y_max * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {w} {h}" class="chart" role="img" aria-label="{t}"><text x="{left}" y="20" class="ct">{t}</text>"#,
        t = esc(title)
    );
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="yt">{label}</text>"#,
            x2 = left + pw,
            py = sy(y),
            tx = left - 6.0,
            ty = sy(y) + 4.0,
            label = fmt_tick(y)
        );
        y += y_step;
    }
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        let _ = write!(
            s,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{yb}" class="vgrid"/><text x="{px:.1}" y="{ty}" class="xt">{label}</text>"#,
            px = sx(x),
            yb = top + ph,
            ty = top + ph + 16.0,
            label = fmt_tick(x)
        );
        x += x_step;
    }
    let _ = write!(
        s,
        r#"<text x="{cx}" y="{by}" class="xl">seconds into the run</text><text transform="translate(16 {cy}) rotate(-90)" class="yl">{yl}</text>"#,
        cx = left + pw / 2.0,
        by = h - 6.0,
        cy = top + ph / 2.0,
        yl = esc(y_label)
    );
    for line in lines {
        if dots {
            for (x, y) in line.points.iter().filter(|p| p.1.is_finite()) {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{}" fill-opacity="0.55"/>"#,
                    sx(*x),
                    sy(*y),
                    line.color
                );
            }
            continue;
        }
        let mut d = String::new();
        let mut pen_down = false;
        for (x, y) in &line.points {
            if y.is_finite() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    sx(*x),
                    sy(*y)
                );
                pen_down = true;
            } else {
                pen_down = false;
            }
        }
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2"{}/>"#,
            line.color,
            if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            }
        );
    }
    let mut lx = left + pw;
    for line in lines.iter().rev() {
        lx -= 14.0 + 7.5 * line.name.len() as f64 + 18.0;
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="10" width="14" height="4" fill="{c}"/><text x="{tx:.1}" y="16" class="lg">{n}</text>"#,
            c = line.color,
            tx = lx + 18.0,
            n = esc(line.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn zip(t: &[f64], v: &[f64], width: f64) -> Vec<(f64, f64)> {
    // Plot each interval at its middle.
    t.iter()
        .zip(v)
        .map(|(t, v)| (t + width / 2.0, *v))
        .collect()
}

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(f) => format!("{f:.digits$}"),
        None => "–".into(),
    }
}

/// Writes `report.html` and `summary.json` into `dir`.
pub fn write(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary.json)?,
    )?;
    std::fs::write(dir.join("report.html"), html(summary))?;
    Ok(())
}

fn html(sum: &Summary) -> String {
    let j = &sum.json;
    let info = &sum.info;
    let x_max = sum
        .series
        .first()
        .and_then(|(_, s)| s.t.last())
        .map_or(info.load_seconds, |t| t + sum.bin_seconds as f64);
    let bw = sum.bin_seconds as f64;
    let mut b = String::new();
    let verdict = if sum.slo.is_empty() {
        r#"<span class="badge none">NO SLO GIVEN</span>"#
    } else if sum.pass {
        r#"<span class="badge pass">PASS</span>"#
    } else {
        r#"<span class="badge fail">FAIL</span>"#
    };
    let _ = write!(
        b,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stampede surge: {sc}</title><style>
body{{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1140px;color:#222;padding:0 16px}}
h1{{font-size:26px;margin:0 0 4px}} h2{{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd}}
.meta{{color:#555}} .badge{{display:inline-block;padding:3px 12px;border-radius:6px;color:#fff;font-weight:700;margin-left:10px;vertical-align:middle}}
.pass{{background:{GREEN}}} .fail{{background:{RED}}} .none{{background:{GREY}}}
table{{border-collapse:collapse;margin:6px 0}} td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}} th{{background:#f6f6f6}} td:first-child,th:first-child{{text-align:left}}
.ok{{color:{GREEN};font-weight:700}} .bad{{color:{RED};font-weight:700}}
.chart{{width:100%;height:auto;background:#fcfcfc;border:1px solid #eee;margin:6px 0}}
.ct{{font-size:15px;font-weight:600}} .grid{{stroke:#e3e3e3}} .vgrid{{stroke:#f0f0f0}} .yt{{font-size:11px;text-anchor:end;fill:#555}}
.xt{{font-size:11px;text-anchor:middle;fill:#555}} .xl,.yl{{font-size:12px;text-anchor:middle;fill:#555}} .lg{{font-size:12px;fill:#333}}
code{{background:#f3f3f3;padding:1px 4px;border-radius:3px}} .notes li{{margin:3px 0}}
</style></head><body>"#,
        sc = esc(info.scenario)
    );
    let _ = write!(
        b,
        r#"<h1>{sc}{verdict}</h1><div class="meta">{started} · target <code>{target}</code> · {machine} · load {load:.0} s, charts in {bw:.0}-second intervals</div>"#,
        sc = esc(info.scenario),
        started = esc(j["started_at"].as_str().unwrap_or("")),
        target = esc(&info.target),
        machine = esc(j["machine"].as_str().unwrap_or("")),
        load = info.load_seconds,
    );
    b.push_str("<h2>Objectives</h2>");
    if sum.slo.is_empty() {
        b.push_str(
            "<p>No <code>--slo</code> rules were given: the exit code is 0 whatever happened.</p>",
        );
    } else {
        b.push_str("<table><tr><th>rule</th><th>observed</th><th>limit</th><th>result</th></tr>");
        for r in &sum.slo {
            let pass = r["pass"] == true;
            let _ = write!(
                b,
                r#"<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class="{}">{}</td></tr>"#,
                esc(r["rule"].as_str().unwrap_or("")),
                esc(r["observed_text"].as_str().unwrap_or("")),
                esc(r["limit_text"].as_str().unwrap_or("")),
                if pass { "ok" } else { "bad" },
                if pass { "pass" } else { "FAIL" }
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Requests</h2><table><tr><th>operation</th><th>requests</th><th>2xx</th><th>429</th><th>errors</th><th>ok/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
    let mut rows = vec![("all".to_string(), &j["all"])];
    if let Some(ops) = j["operations"].as_object() {
        rows.extend(ops.iter().map(|(k, v)| (k.clone(), v)));
    }
    for (name, v) in rows {
        let r = &v["responses"];
        let count = |k: &str| r[k].as_u64().unwrap_or(0);
        let errors = count("4xx") + count("5xx") + count("timeout") + count("connect");
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            v["requests"].as_u64().unwrap_or(0),
            count("2xx"),
            count("429"),
            errors,
            num(&v["ok_per_s"], 1),
            num(&v["latency_ms"]["p50"], 1),
            num(&v["latency_ms"]["p90"], 1),
            num(&v["latency_ms"]["p99"], 1),
            num(&v["latency_ms"]["max"], 1),
        );
    }
    b.push_str("</table>");
    if let Some(m) = j["measurements"].as_object().filter(|m| !m.is_empty()) {
        b.push_str("<table><tr><th>measurement</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
        for (name, v) in m {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                v["count"],
                num(&v["p50_ms"], 1),
                num(&v["p90_ms"], 1),
                num(&v["p99_ms"], 1),
                num(&v["max_ms"], 1)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Over time</h2>");
    let headline = info
        .headline_op
        .and_then(|op| sum.series.iter().find(|(name, _)| name == op))
        .or(sum.series.first());
    if let Some((headline_name, all)) = headline {
        let mut lines = Vec::new();
        if !info.offered.is_empty() {
            lines.push(Line {
                name: "offered",
                color: GREY,
                dashed: true,
                points: info.offered.clone(),
            });
        }
        lines.push(Line {
            name: "2xx/s",
            color: GREEN,
            dashed: false,
            points: zip(&all.t, &all.ok_per_s, bw),
        });
        lines.push(Line {
            name: "429/s",
            color: ORANGE,
            dashed: false,
            points: zip(&all.t, &all.limited_per_s, bw),
        });
        lines.push(Line {
            name: "errors/s",
            color: RED,
            dashed: false,
            points: zip(&all.t, &all.errors_per_s, bw),
        });
        b.push_str(&chart(
            &format!("Throughput: responses per second ({headline_name})"),
            "requests / s",
            x_max,
            &lines,
            false,
        ));
        let pct = |v: &[f64]| v.iter().map(|x| x * 100.0).collect::<Vec<_>>();
        b.push_str(&chart(
            &format!("Errors and 429s: share of responses ({headline_name})"),
            "% of responses",
            x_max,
            &[
                Line {
                    name: "429 %",
                    color: ORANGE,
                    dashed: false,
                    points: zip(&all.t, &pct(&all.limited_share), bw),
                },
                Line {
                    name: "errors %",
                    color: RED,
                    dashed: false,
                    points: zip(&all.t, &pct(&all.error_share), bw),
                },
            ],
            false,
        ));
    }
    // Latency per operation (all operations first when there are several).
    let ops = if sum.series.len() == 2 {
        &sum.series[1..]
    } else {
        &sum.series[..]
    };
    for (name, s) in ops {
        if s.p50.iter().all(|v| v.is_nan()) {
            continue;
        }
        b.push_str(&chart(
            &format!("Latency of successful requests: {name}"),
            "ms",
            x_max,
            &[
                Line {
                    name: "p50",
                    color: BLUE,
                    dashed: false,
                    points: zip(&s.t, &s.p50, bw),
                },
                Line {
                    name: "p90",
                    color: PURPLE,
                    dashed: false,
                    points: zip(&s.t, &s.p90, bw),
                },
                Line {
                    name: "p99",
                    color: RED,
                    dashed: false,
                    points: zip(&s.t, &s.p99, bw),
                },
            ],
            false,
        ));
    }
    for (name, values) in &sum.measures {
        let points: Vec<(f64, f64)> = values.iter().map(|(t, v)| (*t, f64::from(*v))).collect();
        b.push_str(&chart(
            &format!("{name}: each measurement (ms) when it completed"),
            "ms",
            x_max,
            &[Line {
                name,
                color: BLUE,
                dashed: false,
                points,
            }],
            true,
        ));
    }
    b.push_str("<h2>Run</h2><table>");
    let params = j["parameters"].as_object().cloned().unwrap_or_default();
    for (k, v) in params
        .iter()
        .chain(j["facts"].as_object().into_iter().flatten())
    {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            esc(k),
            esc(&text)
        );
    }
    b.push_str("</table>");
    if !info.notes.is_empty() {
        b.push_str("<h2>Notes</h2><ul class=\"notes\">");
        for n in &info.notes {
            let _ = write!(b, "<li>{}</li>", esc(n));
        }
        b.push_str("</ul>");
    }
    b.push_str("<p class=\"meta\">Latency counts successful (2xx) requests only; errors are 4xx other than 429, 5xx, time-outs and broken connections. The same numbers are in <code>summary.json</code> beside this page.</p></body></html>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(97.0, 5.0), 20.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
        assert_eq!(fmt_tick(2000.0), "2k");
        assert_eq!(fmt_tick(0.25), "0.25");
    }

    #[test]
    fn charts_leave_gaps_for_missing_values() {
        let svg = chart(
            "t",
            "ms",
            10.0,
            &[Line {
                name: "p99",
                color: RED,
                dashed: false,
                points: vec![(1.0, 5.0), (2.0, f64::NAN), (3.0, 6.0)],
            }],
            false,
        );
        assert_eq!(svg.matches('M').count(), 2);
    }
}
