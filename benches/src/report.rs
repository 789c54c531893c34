//! The harness's outputs: a Markdown table, `report.json`, `report.md` and `report.svg`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::HarnessError;

/// One job on one implementation under one bound.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The job's name.
    pub job: String,
    /// The implementation's name.
    pub implementation: String,
    /// The latency bound, ms.
    pub bound_ms: u64,
    /// The batch interval of the best run, ms.
    pub batch_ms: u64,
    /// Worker threads.
    pub workers: usize,
    /// The highest stable rate found (0 if none).
    pub max_records_per_s: u64,
    /// That divided by the workers.
    pub records_per_s_per_core: u64,
    /// Median latency at that rate, ms.
    pub p50_ms: f64,
    /// 99th percentile latency at that rate, ms.
    pub p99_ms: f64,
    /// The harness process's peak resident memory during that run, MiB.
    pub peak_rss_mib: f64,
    /// The cores that run kept busy: its CPU time over its wall time.
    pub cores: f64,
    /// Whether a stable rate was found.
    pub stable: bool,
    /// Every run of the search: (batch ms, rate, p99 ms, stable).
    pub steps: Vec<(u64, u64, f64, bool)>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Cores (`available_parallelism`).
    pub cores: usize,
    /// The CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// The UTC date and time of the run.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Warm-up and measured seconds of each run.
    pub warmup_secs: f64,
    /// See `warmup_secs`.
    pub measure_secs: f64,
    /// One row per job, implementation and bound.
    pub rows: Vec<Row>,
}

/// The CPU model, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Now, in UTC, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// The results table, in Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| job | implementation | bound ms | batch ms | workers | max records/s | per core | p50 ms | p99 ms | peak RSS MiB | CPU cores | stable |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.2} | {} |",
            r.job,
            r.implementation,
            r.bound_ms,
            r.batch_ms,
            r.workers,
            thousands(r.max_records_per_s),
            thousands(r.records_per_s_per_core),
            r.p50_ms,
            r.p99_ms,
            r.peak_rss_mib,
            r.cores,
            if r.stable { "yes" } else { "no" }
        );
    }
    s
}

/// The ratios of each implementation's maximum rate to the others', per job and bound.
pub fn ratios(rows: &[Row]) -> String {
    let mut s = String::from("| job | bound ms | ratio | value |\n| --- | ---: | --- | ---: |\n");
    // Rows come in implementation order (dstream, dstream-tcp, timely, baseline): each pair
    // once, in it.
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            if a.job == b.job && a.bound_ms == b.bound_ms && a.implementation != b.implementation {
                let ratio = a.max_records_per_s as f64 / b.max_records_per_s.max(1) as f64;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} / {} | {ratio:.2} |",
                    a.job, a.bound_ms, a.implementation, b.implementation
                );
            }
        }
    }
    s
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes `report.json`, `report.md` and `report.svg` into `dir`.
pub fn write(dir: &Path, report: &Report) -> Result<(), HarnessError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| HarnessError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| HarnessError::Worker(format!("report.json: {e}")))?;
    let file = dir.join("report.json");
    std::fs::write(&file, json + "\n").map_err(io(&file))?;
    let md = format!(
        "# Throughput under a latency bound\n\n- Machine: {} cores, {}\n- Date: {}\n- Command: `{}`\n- Runs: {} s warm-up, {} s measured\n\n{}\n## Ratios of maximum rates\n\n{}",
        report.cores,
        report.cpu,
        report.date,
        report.command,
        report.warmup_secs,
        report.measure_secs,
        table(&report.rows),
        ratios(&report.rows)
    );
    let file = dir.join("report.md");
    std::fs::write(&file, md).map_err(io(&file))?;
    let file = dir.join("report.svg");
    std::fs::write(&file, svg(&report.rows)).map_err(io(&file))?;
    Ok(())
}

const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// Bars of the maximum rate per job and bound, one color per implementation, then per job and
/// bound the p99 latency of every run against its rate (log scale), with the bound dashed.
pub fn svg(rows: &[Row]) -> String {
    let mut impls: Vec<&str> = rows.iter().map(|r| r.implementation.as_str()).collect();
    impls.dedup();
    impls.sort_unstable();
    impls.dedup();
    let mut groups: Vec<(&str, u64)> = rows.iter().map(|r| (r.job.as_str(), r.bound_ms)).collect();
    groups.dedup();
    let color = |imp: &str| COLORS[impls.iter().position(|i| *i == imp).unwrap_or(0) % COLORS.len()];
    let (width, bar_h, plot_h) = (900.0, 260.0, 220.0);
    let height = 60.0 + bar_h + groups.len() as f64 * (plot_h + 40.0) + 20.0;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"16\">Maximum sustainable records/s</text>\n");
    for (i, imp) in impls.iter().enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"41\">{imp}</text>",
            400 + i * 110,
            color(imp),
            416 + i * 110
        );
    }
    let max = rows.iter().map(|r| r.max_records_per_s).max().unwrap_or(1).max(1) as f64;
    let slot = (width - 80.0) / groups.len().max(1) as f64;
    let bar_w = slot / (impls.len() as f64 + 1.0);
    let base = 50.0 + bar_h;
    for (g, (job, bound)) in groups.iter().enumerate() {
        let x0 = 60.0 + g as f64 * slot;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{job} {bound} ms</text>", x0, base + 15.0);
        for r in rows.iter().filter(|r| r.job == *job && r.bound_ms == *bound) {
            let i = impls.iter().position(|i| *i == r.implementation).unwrap_or(0) as f64;
            let h = r.max_records_per_s as f64 / max * (bar_h - 30.0);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\">{}</text>",
                x0 + i * bar_w,
                base - h,
                bar_w * 0.9,
                color(&r.implementation),
                r.implementation,
                r.job,
                r.max_records_per_s,
                x0 + i * bar_w,
                base - h - 3.0,
                thousands(r.max_records_per_s / 1000) + "k"
            );
        }
    }
    for (g, (job, bound)) in groups.iter().enumerate() {
        let top = base + 40.0 + g as f64 * (plot_h + 40.0);
        let points: Vec<&(u64, u64, f64, bool)> =
            rows.iter().filter(|r| r.job == *job && r.bound_ms == *bound).flat_map(|r| &r.steps).collect();
        let (lo, hi) = points.iter().fold((f64::MAX, 1.0f64), |(lo, hi), p| (lo.min(p.1 as f64), hi.max(p.1 as f64)));
        let (lo, hi) = ((lo.min(hi) / 1.5).max(1.0).log10(), (hi * 1.5).log10());
        let y_max = (*bound as f64 * 3.0).max(1.0);
        let x = |rate: u64| 60.0 + ((rate.max(1) as f64).log10() - lo) / (hi - lo).max(1e-9) * (width - 100.0);
        let y = |ms: f64| top + plot_h - ms.min(y_max) / y_max * plot_h;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{}\">{job}, {bound} ms bound: p99 latency (ms, to {y_max}; open circles unstable) vs records/s (log)</text>",
            top - 6.0
        );
        let _ = writeln!(
            s,
            "<line x1=\"60\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"gray\" stroke-dasharray=\"4\"/>",
            width - 40.0,
            y(*bound as f64),
            y(*bound as f64)
        );
        let _ = writeln!(
            s,
            "<rect x=\"60\" y=\"{:.1}\" width=\"{}\" height=\"{plot_h}\" fill=\"none\" stroke=\"black\"/>",
            top,
            width - 100.0
        );
        for r in rows.iter().filter(|r| r.job == *job && r.bound_ms == *bound) {
            let mut steps = r.steps.clone();
            steps.sort_by_key(|p| (p.0, p.1));
            // A run cut short before any measured batch has no latency: draw it off the top.
            for p in &mut steps {
                if !p.3 && p.2 == 0.0 {
                    p.2 = y_max;
                }
            }
            let line: Vec<String> = steps.iter().map(|p| format!("{:.1},{:.1}", x(p.1), y(p.2))).collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" points=\"{}\"/>",
                color(&r.implementation),
                line.join(" ")
            );
            for p in &steps {
                let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{} batch {} ms, {} records/s: p99 {:.1} ms</title></circle>", x(p.1), y(p.2), if p.3 { color(&r.implementation) } else { "white\" stroke=\"black" }, r.implementation, p.0, p.1, p.2);
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
