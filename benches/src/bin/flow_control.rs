//! The flow-control demonstration: a TCP peer floods a socket stream at ten times the rate its
//! deliberately slow output sustains, for a minute. Backpressure paces the receiver, the
//! receiver's bounded buffer stops it reading when full, and TCP pushes back on the peer: the
//! resident memory stays flat, the total delay settles, and every line written is processed.
//!
//! `cargo run --release -p dstream-benches --bin flow_control -- [--seconds 60] [--cost-us 20]
//! [--csv benches/flow_control.csv] [--svg benches/flow_control.svg]`
//!
//! The output costs `cost-us` microseconds per record (a sleep per batch), so it sustains
//! `1e6 / cost-us` records per second; the peer tries to write ten times that.

#![allow(clippy::print_stdout)] // The demonstration prints its CSV on stdout.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dstream::{BatchInfo, FlowControl, StreamingContext, StreamingListener, SystemClock};
use dstream_inproc::LocalCluster;
use dstream_storage::SocketTextReceiver;

struct Args {
    seconds: u64,
    cost_us: u64,
    csv: Option<String>,
    svg: Option<String>,
}

fn args() -> Args {
    let mut a = Args { seconds: 60, cost_us: 20, csv: None, svg: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--cost-us" => a.cost_us = value.parse().unwrap_or(a.cost_us).max(1),
            "--csv" => a.csv = Some(value),
            "--svg" => a.svg = Some(value),
            other => eprintln!("ignoring unknown flag {other}"),
        }
    }
    a
}

/// Resident memory of this process, in MiB (Linux: `/proc/self/statm`, in pages of 4 KiB).
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    (pages * 4096) as f64 / (1 << 20) as f64
}

/// One completed batch: seconds since the start, records, total delay.
struct Batches {
    started: Instant,
    rows: Mutex<Vec<(f64, u64, Duration)>>,
}

impl StreamingListener for Batches {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let at = self.started.elapsed().as_secs_f64();
        if let Ok(mut rows) = self.rows.lock() {
            rows.push((at, info.records, info.total_delay));
        }
    }
}

/// One sample per second: seconds since the start, lines written so far, RSS in MiB.
type Samples = Vec<(f64, u64, f64)>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    let sustainable = 1_000_000 / a.cost_us;
    let offered = 10 * sustainable;
    let line = format!("{:099}\n", 0);
    eprintln!(
        "flood: {offered} lines/s offered for {} s; output sustains {sustainable} records/s ({} µs per record)",
        a.seconds, a.cost_us
    );

    let cluster = LocalCluster::builder().workers(2).build()?;
    let ssc = StreamingContext::new(cluster.context(), Duration::from_millis(500), Arc::new(SystemClock::new()))?;
    let server = TcpListener::bind("127.0.0.1:0")?;
    let receiver = SocketTextReceiver::new(server.local_addr()?)?;
    let stats = receiver.stats();
    let flow = FlowControl::default().buffer_bytes_max(64 << 20).backpressure(1000);
    let lines = ssc.receiver_stream_with(receiver, flow);
    let processed = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&processed);
    let cost = a.cost_us;
    lines.foreach_rdd(move |rdd, _| {
        let n = rdd.count()?;
        // The deliberately slow output: `cost` µs per record.
        std::thread::sleep(Duration::from_micros(n * cost));
        sink.fetch_add(n, Ordering::SeqCst);
        Ok(())
    })?;
    let started = Instant::now();
    let batches = Arc::new(Batches { started, rows: Mutex::new(Vec::new()) });
    ssc.add_listener(batches.clone());
    let running = ssc.start()?;

    // The peer: writes `offered` lines per second in bursts every 10 ms, for `seconds`.
    let written = Arc::new(AtomicU64::new(0));
    let flooding = Arc::new(AtomicBool::new(true));
    let (w, f, seconds) = (Arc::clone(&written), Arc::clone(&flooding), a.seconds);
    let peer = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = server.accept()?;
        let burst = (offered / 100) as usize;
        let block = line.repeat(burst);
        let t0 = Instant::now();
        let mut tick = 0u64;
        while t0.elapsed() < Duration::from_secs(seconds) {
            conn.write_all(block.as_bytes())?; // blocks while TCP pushes back
            w.fetch_add(burst as u64, Ordering::SeqCst);
            tick += 1;
            let next = Duration::from_millis(10 * tick);
            if let Some(wait) = next.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        f.store(false, Ordering::SeqCst);
        Ok(()) // closing the connection
    });

    let mut samples: Samples = Vec::new();
    while flooding.load(Ordering::SeqCst) || stats.lines() < written.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push((started.elapsed().as_secs_f64(), written.load(Ordering::SeqCst), rss_mib()));
        if started.elapsed() > Duration::from_secs(a.seconds * 3 + 60) {
            eprintln!("the receiver did not catch up");
            break;
        }
    }
    peer.join().map_err(|_| "the peer panicked")??;
    running.stop(true)?;
    let (written, processed) = (written.load(Ordering::SeqCst), processed.load(Ordering::SeqCst));
    let rows = batches.rows.lock().map_err(|_| "listener lock")?.clone();
    let csv = to_csv(&samples, &rows);
    print!("{csv}");
    let secs = a.seconds as f64;
    let steady: Vec<&(f64, u64, f64)> = samples.iter().filter(|s| s.0 >= 10.0 && s.0 <= secs).collect();
    // Before 10 s the rate is still settling; a run shorter than that reports its whole span.
    let steady = if steady.is_empty() { samples.iter().collect() } else { steady };
    let (rss_min, rss_max) = steady.iter().fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(s.2), hi.max(s.2)));
    let delays: Vec<f64> =
        rows.iter().filter(|r| r.0 >= secs - 10.0 && r.0 <= secs).map(|r| r.2.as_secs_f64()).collect();
    let delay_avg = delays.iter().sum::<f64>() / delays.len().max(1) as f64;
    eprintln!(
        "offered {offered}/s; written {written} lines in {secs} s ({:.0}/s accepted by TCP); processed {processed}; \
         records in == records out: {}; RSS from 10 s to the end: {rss_min:.1} to {rss_max:.1} MiB; \
         total delay over the last 10 s: {:.0} ms on average",
        written as f64 / secs,
        written == processed,
        delay_avg * 1000.0
    );
    if let Some(path) = &a.csv {
        std::fs::write(path, &csv)?;
    }
    if let Some(path) = &a.svg {
        std::fs::write(path, to_svg(&samples, &rows, offered as f64))?;
    }
    if written != processed {
        return Err(format!("{written} lines written, {processed} processed").into());
    }
    Ok(())
}

/// Per second: lines written by the peer (per second), records processed per second (the
/// batches completed in that second), the largest total delay of those batches, and RSS.
fn to_csv(samples: &Samples, rows: &[(f64, u64, Duration)]) -> String {
    let mut out = String::from("second,written_per_s,processed_per_s,total_delay_ms_max,rss_mib\n");
    let mut prev = 0;
    for &(t, written, rss) in samples {
        let batches = rows.iter().filter(|r| r.0 > t - 1.0 && r.0 <= t);
        let (records, delay) = batches.fold((0, 0.0f64), |(n, d), r| (n + r.1, d.max(r.2.as_secs_f64() * 1000.0)));
        out.push_str(&format!("{t:.0},{},{records},{delay:.0},{rss:.1}\n", written - prev));
        prev = written;
    }
    out
}

/// Three stacked panels: rates (offered, written, processed), RSS, total delay per batch.
fn to_svg(samples: &Samples, rows: &[(f64, u64, Duration)], offered: f64) -> String {
    let (w, h, pad) = (720.0, 180.0, 50.0);
    let t_max = samples.last().map_or(1.0, |s| s.0).max(1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        w + pad * 2.0,
        3.0 * (h + pad) + pad
    );
    let mut panel = |i: f64, title: &str, y_max: f64, unit: &str, series: &[(&str, &str, Vec<(f64, f64)>)]| {
        let top = pad + i * (h + pad);
        let x = |t: f64| pad + t / t_max * w;
        let y = |v: f64| top + h - v / y_max * h;
        svg.push_str(&format!(
            "<text x=\"{pad}\" y=\"{}\" font-size=\"13\">{title}</text>\n<rect x=\"{pad}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\n",
            top - 8.0
        ));
        for k in 0..=4 {
            let v = y_max * k as f64 / 4.0;
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
                pad - 4.0,
                y(v) + 4.0,
                format_value(v, unit)
            ));
        }
        for k in 0..=6 {
            let t = t_max * k as f64 / 6.0;
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t:.0} s</text>\n",
                x(t),
                top + h + 14.0
            ));
        }
        for (j, (name, color, points)) in series.iter().enumerate() {
            let path: Vec<String> =
                points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(v.min(y_max)))).collect();
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
                path.join(" "),
                pad + w - 220.0,
                top + 14.0 + 13.0 * j as f64
            ));
        }
    };
    let mut prev = 0;
    let written: Vec<(f64, f64)> = samples
        .iter()
        .map(|&(t, n, _)| {
            let rate = (n - prev) as f64;
            prev = n;
            (t, rate)
        })
        .collect();
    let processed: Vec<(f64, f64)> = samples
        .iter()
        .map(|&(t, _, _)| (t, rows.iter().filter(|r| r.0 > t - 1.0 && r.0 <= t).map(|r| r.1 as f64).sum()))
        .collect();
    let offered_line = vec![(0.0, offered), (t_max, offered)];
    let rate_max = offered * 1.1;
    panel(
        0.0,
        "Input rate (records/s): offered by the peer, accepted by TCP, processed",
        rate_max,
        "",
        &[
            ("offered", "#d62728", offered_line),
            ("written (TCP)", "#1f77b4", written),
            ("processed", "#2ca02c", processed),
        ],
    );
    let rss: Vec<(f64, f64)> = samples.iter().map(|&(t, _, r)| (t, r)).collect();
    let rss_max = rss.iter().map(|p| p.1).fold(0.0, f64::max) * 1.25;
    panel(1.0, "Resident memory (MiB)", rss_max.max(1.0), "MiB", &[("RSS", "#9467bd", rss)]);
    let delay: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.2.as_secs_f64())).collect();
    let delay_max = delay.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;
    panel(2.0, "Total delay per batch (s)", delay_max.max(0.1), "s", &[("total delay", "#ff7f0e", delay)]);
    svg.push_str("</svg>\n");
    svg
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "" if v >= 1000.0 => format!("{:.0}k", v / 1000.0),
        "" => format!("{v:.0}"),
        "s" => format!("{v:.1} s"),
        _ => format!("{v:.0} {unit}"),
    }
}
