//! The per-batch progress report of the examples, its summary, and a chart of the delays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{BatchInfo, Error, StreamingListener, Time};

/// Prints one line per completed batch and keeps what the summary needs.
#[derive(Debug, Default)]
pub struct Progress {
    batches: Mutex<Vec<BatchInfo>>,
    receiver_errors: Mutex<u64>,
    quiet: bool,
}

impl Progress {
    /// A progress report; `quiet` keeps the per-batch lines off stdout.
    pub fn new(quiet: bool) -> Arc<Progress> {
        Arc::new(Progress { quiet, ..Progress::default() })
    }

    /// The batches completed so far.
    pub fn batches(&self) -> usize {
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Prints the summary of the run.
    ///
    /// Two batches are partial: the first (batch times are multiples of the interval, so the
    /// first starts between two of them), and the one open at a graceful stop, which runs at
    /// once, before its batch time (so its total delay is shorter than its processing). Both
    /// count in the records and the processing times; the rate is taken over the batches in
    /// between (or over all when there are none), the total delays over those on schedule.
    pub fn summary(&self, batch_interval: Duration) {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let records: u64 = batches.iter().map(|b| b.records).sum();
        let on_schedule: Vec<&BatchInfo> = batches.iter().filter(|b| b.total_delay >= b.processing_delay).collect();
        let cut_short = batches.len() - on_schedule.len();
        let all: Vec<&BatchInfo> = batches.iter().collect();
        let full = if on_schedule.len() > 1 { &on_schedule[1..] } else { &all[..] };
        let seconds = batch_interval.as_secs_f64() * full.len() as f64;
        let rate = if seconds > 0.0 { full.iter().map(|b| b.records).sum::<u64>() as f64 / seconds } else { 0.0 };
        let avg = |bs: &[&BatchInfo], f: fn(&BatchInfo) -> Duration| {
            bs.iter().map(|b| f(b)).sum::<Duration>() / bs.len().max(1) as u32
        };
        let max = |bs: &[&BatchInfo], f: fn(&BatchInfo) -> Duration| bs.iter().map(|b| f(b)).max().unwrap_or_default();
        println!(
            "summary: {} batches of {} ms{}, {records} records ({rate:.0} records/s); processing avg {} ms, max {} ms; {}; {} receiver errors",
            batches.len(),
            batch_interval.as_millis(),
            match cut_short {
                0 => String::new(),
                1 => " (the last cut short by the stop)".to_string(),
                n => format!(" ({n} cut short by the stop)"),
            },
            avg(&all, |b| b.processing_delay).as_millis(),
            max(&all, |b| b.processing_delay).as_millis(),
            if on_schedule.is_empty() {
                "total delay: no batch ran on schedule".to_string()
            } else {
                format!(
                    "total delay avg {} ms, max {} ms",
                    avg(&on_schedule, |b| b.total_delay).as_millis(),
                    max(&on_schedule, |b| b.total_delay).as_millis()
                )
            },
            self.receiver_errors.lock().unwrap_or_else(|p| p.into_inner()),
        );
    }
}

impl Progress {
    /// Prints the batches from `before` batches before the one at or after `at` to `after`
    /// batches after it: their records and delays, as a table.
    pub fn print_around(&self, at: Time, before: usize, after: usize) {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = batches.iter().position(|b| b.time >= at) else { return };
        let first = batches.first().map_or(at, |b| b.time);
        println!("| batch (s after the first) | records | processing | total delay |\n| ---: | ---: | ---: | ---: |");
        for b in &batches[i.saturating_sub(before)..(i + after + 1).min(batches.len())] {
            println!(
                "| {:.1} | {} | {} ms | {} ms |",
                b.time.saturating_since(first).as_secs_f64(),
                b.records,
                b.processing_delay.as_millis(),
                b.total_delay.as_millis()
            );
        }
    }
}

impl Progress {
    /// An SVG line chart of every batch's processing and total delay against its time since
    /// the first, with a mark at `event` (a failure) when given.
    pub fn svg(&self, title: &str, event: Option<Time>) -> String {
        use std::fmt::Write as _;
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let first = batches.first().map_or(Time::ZERO, |b| b.time);
        let since = |t: Time| t.saturating_since(first).as_secs_f64();
        let span = batches.last().map_or(1.0, |b| since(b.time)).max(1.0);
        let max_ms = batches.iter().map(|b| b.total_delay.max(b.processing_delay).as_millis()).max().unwrap_or(1);
        let max_ms = (max_ms as f64 * 1.1).max(1.0);
        let (w, h, left, bottom, top) = (640.0, 360.0, 60.0, 40.0, 40.0);
        let x = |secs: f64| left + secs / span * (w - left - 20.0);
        let y = |ms: f64| h - bottom - ms / max_ms * (h - bottom - top);
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <text x=\"{left}\" y=\"20\" font-size=\"14\">{title}</text>\n\
             <line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"black\"/>\n\
             <text x=\"{mid}\" y=\"{lab}\">batch time (s after the first)</text>\n\
             <text x=\"10\" y=\"35\">delay (ms), max {max_ms:.0}</text>\n",
            b = h - bottom,
            r = w - 20.0,
            mid = w / 2.0 - 80.0,
            lab = h - 8.0,
        );
        for s in 0..=(span as u64) {
            let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\">{s}</text>", x(s as f64) - 4.0, h - bottom + 16.0);
        }
        if let Some(at) = event {
            let ex = x(since(at));
            let _ = writeln!(
                out,
                "<line x1=\"{ex:.1}\" y1=\"{top}\" x2=\"{ex:.1}\" y2=\"{}\" stroke=\"gray\" stroke-dasharray=\"4\"/>",
                h - bottom
            );
            let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\" fill=\"gray\">worker lost</text>", ex + 4.0, top + 12.0);
        }
        let lines: [(&str, &str, fn(&BatchInfo) -> Duration); 2] =
            [("processing", "#1f77b4", |b| b.processing_delay), ("total delay", "#d62728", |b| b.total_delay)];
        for (i, (label, color, delay)) in lines.iter().enumerate() {
            // A batch run early by a graceful stop has no meaningful total delay.
            let points: String = batches
                .iter()
                .filter(|b| b.total_delay >= b.processing_delay)
                .map(|b| format!("{:.1},{:.1} ", x(since(b.time)), y(delay(b).as_millis() as f64)))
                .collect();
            let _ =
                writeln!(out, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>");
            let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label}</text>", w - 160.0, 56 + 16 * i);
        }
        out.push_str("</svg>\n");
        out
    }
}

impl StreamingListener for Progress {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if !self.quiet {
            if info.total_delay < info.processing_delay {
                // The batch open at a graceful stop runs at once, before its batch time: its
                // delays, counted from that time, would read 0 ms.
                println!(
                    "batch {}: {} records, run early by the stop, processing {} ms",
                    info.time,
                    info.records,
                    info.processing_delay.as_millis()
                );
            } else {
                println!(
                    "batch {}: {} records, scheduling {} ms, processing {} ms, total {} ms",
                    info.time,
                    info.records,
                    info.scheduling_delay.as_millis(),
                    info.processing_delay.as_millis(),
                    info.total_delay.as_millis()
                );
            }
        }
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).push(info.clone());
    }

    fn on_batch_failed(&self, time: Time, error: &Error) {
        eprintln!("batch {time} failed: {error}");
    }

    fn on_receiver_error(&self, _stream: dstream::StreamId, _message: &str) {
        // Counted for the summary; the receivers of dstream-storage print each report on
        // stderr themselves.
        *self.receiver_errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}
