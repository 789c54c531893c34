//! What a run costs the machine: the harness process's resident memory, sampled while the run
//! lasts (a run that grows past the cut-off is cut short, so the search goes on instead of the
//! kernel killing the harness), and the CPU time all its threads used.
//!
//! Read from `/proc/self` (Linux); elsewhere both read as zero and nothing is cut short.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::collector::Collector;

/// How often the resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The harness process's resident memory, bytes (0 if unknown).
pub fn resident_bytes() -> u64 {
    // statm: size resident shared text lib data dt, in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * page_bytes()
}

fn page_bytes() -> u64 {
    // The page size of every Linux the project runs on; /proc gives no portable way to read it.
    4096
}

/// CPU time the process's threads used so far, user and system (zero if unknown).
pub fn cpu_time() -> Duration {
    // stat: fields 14 and 15 (utime, stime), in clock ticks, after the parenthesised name.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the name start at field 3 (state): utime is field 14, stime field 15.
    let total = ticks(14 - 3) + ticks(15 - 3);
    // USER_HZ is 100 on every Linux ABI the project builds for.
    Duration::from_millis(total * 10)
}

/// The machine's memory, bytes, from `/proc/meminfo` (0 if unknown).
pub fn machine_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What one run used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// The highest resident memory sampled during the run, MiB.
    pub peak_rss_mib: f64,
    /// CPU time used during the run divided by its wall time: the cores it kept busy.
    pub cores: f64,
}

/// Watches one run: samples the resident memory and fails the run through `collector` once it
/// passes `resident_max_bytes` (the process keeps memory that earlier runs freed, so a bound on
/// the growth alone would let a late run take the machine).
pub struct Watch {
    stop: Sender<()>,
    thread: JoinHandle<u64>,
    started: Instant,
    cpu: Duration,
}

impl Watch {
    /// Starts watching.
    pub fn start(collector: &Arc<Collector>, resident_max_bytes: u64) -> Watch {
        let (stop, stopped) = channel::<()>();
        let collector = Arc::clone(collector);
        let base = resident_bytes();
        let thread = std::thread::spawn(move || {
            let mut peak = base;
            loop {
                let rss = resident_bytes();
                peak = peak.max(rss);
                if rss > resident_max_bytes {
                    collector.fail(format!(
                        "resident memory at {} MiB, past the cut-off of {} MiB",
                        rss >> 20,
                        resident_max_bytes >> 20
                    ));
                    return peak;
                }
                match stopped.recv_timeout(SAMPLE_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return peak,
                }
            }
        });
        Watch { stop, thread, started: Instant::now(), cpu: cpu_time() }
    }

    /// Stops watching; what the run used.
    pub fn finish(self) -> Usage {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let cpu = cpu_time().saturating_sub(self.cpu).as_secs_f64();
        let _ = self.stop.send(());
        let peak = self.thread.join().unwrap_or(0);
        Usage { peak_rss_mib: peak as f64 / f64::from(1u32 << 20), cores: cpu / wall }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_own_usage() {
        assert!(resident_bytes() > 0);
        assert!(machine_bytes() > resident_bytes());
        // Spins until the process has used a clock tick of CPU: a parse that reads zero (or
        // stops moving) never gets there and fails the test.
        let mut x = 0u64;
        for i in 0..u64::MAX {
            x = x.wrapping_mul(31).wrapping_add(i);
            if i % 1_000_000 == 0 && cpu_time() > Duration::ZERO {
                break;
            }
            assert!(i < 100_000_000_000, "no CPU time read after {i} iterations");
        }
        std::hint::black_box(x);
    }
}
