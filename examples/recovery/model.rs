//! Section 5.1 of the D-Streams paper: how long recovery takes against the load before the
//! failure, for upstream backup (one standby replays what the lost node did since its last
//! checkpoint) and for parallel recovery (every survivor recomputes a share of it), as a model,
//! with parallel recovery measured in the simulation beside it.
//!
//! The model, in units of one worker's capacity: before the failure each of `n` workers is
//! busy a fraction `load` of the time; the lost worker did `load * c` seconds of work since
//! the checkpoint `c` seconds before the failure, and its input keeps arriving.
//!
//! - Upstream backup: one standby replays that backlog while its input keeps arriving at
//!   `load`: it catches up after `t = load * c / (1 - load)`.
//! - Parallel recovery: the `n - 1` survivors share the backlog and the lost worker's input, so
//!   each has `1 - load * n / (n - 1)` to spare: `t = load * c / ((n - 1) - load * n)`.

use std::fmt::Write as _;

use dstream::Time;
use dstream_inproc::sim::BatchDelay;

use super::{kills, mean, run, secs, Args, Scenario};

/// Workers of the measured cluster.
const WORKERS: u32 = 20;
/// The checkpoint interval of the measured runs.
const CHECKPOINT_S: u64 = 10;
/// The kill: 9.5 s after the batch of 50 s, whose window state is the last checkpoint.
const KILL_MS: u64 = 59_500;
/// Records per batch of the measured runs, in quarters of `--records` (the load grows with
/// them).
const QUARTERS: [usize; 5] = [1, 2, 3, 4, 5];

/// Seconds upstream backup takes to catch up, if it ever does.
fn upstream(load: f64, c: f64) -> Option<f64> {
    (load < 1.0).then(|| load * c / (1.0 - load))
}

/// Seconds parallel recovery on the survivors of `n` workers takes, if it ever catches up.
fn parallel(load: f64, c: f64, n: u32) -> Option<f64> {
    let spare = f64::from(n - 1) - load * f64::from(n);
    (spare > 0.0).then(|| load * c / spare)
}

/// What one measured run shows: the load before the kill and the recovery time.
struct Measured {
    records: usize,
    load: f64,
    recovery_s: f64,
}

/// The load before the kill, and how long after it the last of the batches delayed beyond the
/// worst delay before it (plus 10 %) completed: the recovery, batch boundaries included. At
/// tiny loads (a few tasks' fixed cost per batch) the cluster one worker smaller may stay
/// above that mark to the end: what is measured there is the lost capacity, not a recovery.
fn measure(records: usize, batches: &[BatchDelay]) -> Measured {
    let (from, to) = (40, KILL_MS / 1000 - 1);
    let load = mean(batches, from, to) / 1000.0;
    let normal = batches
        .iter()
        .filter(|b| b.time >= secs(from) && b.time <= secs(to))
        .map(|b| b.total)
        .max()
        .unwrap_or_default();
    let kill = Time::from_millis(KILL_MS);
    // The delayed batches right after the kill, up to the first on time again (a later
    // checkpoint's batch may be slow for its own reasons).
    let end_of_last_delayed = batches
        .iter()
        .filter(|b| b.time + b.total > kill)
        .take_while(|b| b.total.as_secs_f64() > normal.as_secs_f64() * 1.1)
        .map(|b| b.time + b.total)
        .last();
    let recovery_s = end_of_last_delayed.map_or(0.0, |end| (end - kill).as_secs_f64());
    Measured { records, load, recovery_s }
}

/// Runs the measured points, prints the tables and writes the chart.
pub(super) fn figure(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let c = (KILL_MS as f64 / 1000.0) - 50.0;
    let mut measured = Vec::new();
    for records in QUARTERS.map(|q| args.records * q / 4) {
        let scenario = Scenario {
            label: format!("{records} records"),
            workers: WORKERS,
            checkpoint_s: CHECKPOINT_S,
            plan: kills(WORKERS, &[5], Time::from_millis(KILL_MS))?,
            speculation: true,
        };
        let batches = run(&Args { records, ..args.clone() }, &scenario)?;
        measured.push(measure(records, &batches));
    }
    let show = |t: Option<f64>| t.map_or("never".to_string(), |t| format!("{t:.2} s"));
    println!("\nSection 5.1: recovery time against the load before the failure, {c} s after the last checkpoint\n");
    println!("| load | upstream backup | parallel, 5 workers | parallel, 10 workers | parallel, 20 workers |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for tenth in 1..=9 {
        let load = f64::from(tenth) / 10.0;
        let p = |n| show(parallel(load, c, n));
        println!("| {load:.1} | {} | {} | {} | {} |", show(upstream(load, c)), p(5), p(10), p(20));
    }
    println!(
        "\nMeasured in the simulation: one worker of {WORKERS} killed at {:.1} s, checkpoint every {CHECKPOINT_S} s\n",
        KILL_MS as f64 / 1000.0
    );
    println!(
        "| records per batch | load before the kill | recovery, measured | parallel, model | upstream backup, model |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for m in &measured {
        let (model, up) = (show(parallel(m.load, c, WORKERS)), show(upstream(m.load, c)));
        println!("| {} | {:.2} | {:.2} s | {model} | {up} |", m.records, m.load, m.recovery_s);
    }
    if let Some(dir) = &args.svg_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("model.svg"), svg(c, &measured))?;
    }
    Ok(())
}

/// The model's curves and the measured points: recovery time against load.
fn svg(c: f64, measured: &[Measured]) -> String {
    let (w, h, left, bottom, top) = (640.0, 360.0, 60.0, 40.0, 40.0);
    let y_max = 3.0 * c;
    let x = |load: f64| left + load * (w - left - 20.0);
    let y = |t: f64| h - bottom - t.min(y_max) / y_max * (h - bottom - top);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">Section 5.1: recovery time, {c} s after the last checkpoint</text>\n\
         <line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{mid}\" y=\"{lab}\">load before the failure</text>\n\
         <text x=\"10\" y=\"35\">recovery (s), max {y_max:.0}</text>\n",
        b = h - bottom,
        r = w - 20.0,
        mid = w / 2.0 - 60.0,
        lab = h - 8.0,
    );
    for tenth in (0..=10).step_by(2) {
        let load = f64::from(tenth) / 10.0;
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\">{load:.1}</text>", x(load) - 8.0, h - bottom + 16.0);
    }
    let curves: [(&str, &str, Box<dyn Fn(f64) -> Option<f64>>); 4] = [
        ("upstream backup", "#d62728", Box::new(|l| upstream(l, c))),
        ("parallel, 5 workers", "#ff7f0e", Box::new(|l| parallel(l, c, 5))),
        ("parallel, 10 workers", "#2ca02c", Box::new(|l| parallel(l, c, 10))),
        ("parallel, 20 workers", "#1f77b4", Box::new(|l| parallel(l, c, 20))),
    ];
    for (i, (label, color, t)) in curves.iter().enumerate() {
        let mut points = String::new();
        for step in 0..=95 {
            let load = f64::from(step) / 100.0;
            match t(load) {
                Some(v) if v <= y_max => {
                    let _ = write!(points, "{:.1},{:.1} ", x(load), y(v));
                }
                _ => break,
            }
        }
        let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>");
        let _ =
            writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label} (model)</text>", left + 20.0, 56 + 16 * i);
    }
    for m in measured {
        let _ = writeln!(out, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"black\"/>", x(m.load), y(m.recovery_s));
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\">&#9679; measured, 20 workers</text>",
        left + 20.0,
        56 + 16 * curves.len()
    );
    out.push_str("</svg>\n");
    out
}
