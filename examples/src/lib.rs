//! Pieces shared by the example programs: the flags they share (parsed with `clap`), the
//! in-process cluster they run on, a per-batch progress report and a summary, a run that ends
//! after a duration, at the end of the input, or on Ctrl-C, and the top-k of a dataset of
//! counts. `cargo run --release --example NAME -- --help` lists each program's flags with
//! their defaults.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // Example programs report on stdout.

use std::ffi::OsString;
use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::generator::Record;
use dstream::hash::FixedMap;
use dstream::{
    BatchInfo, Context, DStream, Data, Error, Rdd, StreamingContext, StreamingHandle, StreamingListener, Time, WorkerId,
};
use dstream_inproc::LocalCluster;
use dstream_storage::{SignalsExt, SocketTextReceiver};
use dstream_tcp::{Cluster as TcpCluster, LaunchError};

/// Where an example's program runs: the value of `--cluster`.
///
/// - `inproc` (the default): the in-process [`LocalCluster`], with `--workers` workers;
/// - `local:N`: a driver and `N` worker processes of the same executable, over TCP on
///   127.0.0.1 ([`dstream_tcp::ClusterBuilder::local`]);
/// - `listen:ADDR:N`: a driver listening on `ADDR` (`HOST:PORT`) for `N` workers started
///   elsewhere ([`dstream_tcp::ClusterBuilder::listen`]): each runs the same command line with
///   `DSTREAM_ROLE=worker`, `DSTREAM_DRIVER_ADDR=ADDR`, `DSTREAM_WORKER_INDEX=0..N` and the
///   secret in `DSTREAM_SECRET` (or `DSTREAM_SECRET_FILE`), as the driver has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterSpec {
    /// The in-process cluster.
    #[default]
    InProcess,
    /// A driver and this many worker processes on this machine, over TCP.
    Local(u32),
    /// A driver listening on `addr` for `workers` workers started elsewhere.
    Listen {
        /// The address the driver listens on.
        addr: SocketAddr,
        /// How many workers it waits for.
        workers: u32,
    },
}

/// Why a `--cluster` value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSpecError {
    /// Neither `inproc`, `local:N` nor `listen:ADDR:N`.
    #[error("{0:?} is not a cluster: expected inproc, local:N or listen:HOST:PORT:N")]
    Unknown(String),
    /// The number of workers is not a whole number of at least 1.
    #[error("{value:?} is not a number of workers (a whole number of at least 1)")]
    Workers {
        /// The bad number.
        value: String,
    },
    /// The address of `listen:ADDR:N` is not `HOST:PORT` with an IP address.
    #[error("{value:?} is not an address to listen on (IP:PORT, e.g. 0.0.0.0:7077): {reason}")]
    Addr {
        /// The bad address.
        value: String,
        /// Why.
        reason: String,
    },
}

impl std::str::FromStr for ClusterSpec {
    type Err = ClusterSpecError;

    fn from_str(s: &str) -> Result<ClusterSpec, ClusterSpecError> {
        fn workers(value: &str) -> Result<u32, ClusterSpecError> {
            match value.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ClusterSpecError::Workers { value: value.to_string() }),
            }
        }
        if s == "inproc" {
            return Ok(ClusterSpec::InProcess);
        }
        if let Some(n) = s.strip_prefix("local:") {
            return Ok(ClusterSpec::Local(workers(n)?));
        }
        if let Some(rest) = s.strip_prefix("listen:") {
            // The number of workers follows the last colon (an IPv6 address has colons too).
            let (addr, n) = rest.rsplit_once(':').ok_or_else(|| ClusterSpecError::Unknown(s.to_string()))?;
            let workers = workers(n)?;
            let addr = addr.parse().map_err(|e: std::net::AddrParseError| ClusterSpecError::Addr {
                value: addr.into(),
                reason: e.to_string(),
            })?;
            return Ok(ClusterSpec::Listen { addr, workers });
        }
        Err(ClusterSpecError::Unknown(s.to_string()))
    }
}

impl Display for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterSpec::InProcess => f.write_str("inproc"),
            ClusterSpec::Local(n) => write!(f, "local:{n}"),
            ClusterSpec::Listen { addr, workers } => write!(f, "listen:{addr}:{workers}"),
        }
    }
}

/// Why an example's cluster could not be started, or a call on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The in-process cluster, or the program built on it, failed.
    #[error(transparent)]
    InProcess(#[from] Error),
    /// The TCP cluster failed to launch, or a call on it failed.
    #[error(transparent)]
    Tcp(#[from] LaunchError),
    /// The flags do not go together.
    #[error("{0}")]
    Flags(String),
    /// This example runs on the in-process cluster only.
    #[error("this example runs on the in-process cluster only: --cluster {spec} is not supported here")]
    InProcessOnly {
        /// The cluster asked for.
        spec: ClusterSpec,
    },
}

/// The flags of the cluster, shared by the streaming examples (flattened into each
/// program's own flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Workers of the in-process cluster [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Where the program runs: inproc (the in-process cluster), local:N (a driver and N worker
    /// processes of this executable over TCP on 127.0.0.1), or listen:IP:PORT:N (a driver
    /// waiting for N workers started elsewhere with DSTREAM_ROLE=worker, DSTREAM_DRIVER_ADDR,
    /// DSTREAM_WORKER_INDEX and DSTREAM_SECRET)
    #[arg(long, value_name = "SPEC", default_value = "inproc")]
    pub cluster: ClusterSpec,
}

impl ClusterArgs {
    /// The number of workers the cluster will have: `N` of `--cluster local:N` or
    /// `listen:ADDR:N`, else `--workers`, or one per core as [`LocalCluster::builder`] does.
    pub fn worker_count(&self) -> u32 {
        match self.cluster {
            ClusterSpec::Local(n) | ClusterSpec::Listen { workers: n, .. } => n,
            ClusterSpec::InProcess => self.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            }),
        }
    }

    /// Whether this process is a worker of a TCP cluster (`--cluster local:N` or
    /// `listen:ADDR:N`, and `DSTREAM_ROLE=worker`): it builds the program, serves and exits in
    /// [`ClusterArgs::launch`], and should print nothing of its own (the driver reports).
    pub fn is_worker_process(&self) -> bool {
        self.cluster != ClusterSpec::InProcess
            && std::env::var_os(dstream_tcp::cluster::ROLE_ENV).is_some_and(|role| role == "worker")
    }

    /// Where the program runs, for a banner: `in-process, N workers` or the TCP cluster.
    pub fn describe(&self) -> String {
        match self.cluster {
            ClusterSpec::InProcess => format!("in-process, {} workers", self.worker_count()),
            ClusterSpec::Local(n) => format!("{n} worker processes over TCP on 127.0.0.1 (--cluster local:{n})"),
            ClusterSpec::Listen { addr, workers } => {
                format!("{workers} workers over TCP, the driver listening on {addr}")
            }
        }
    }

    /// An in-process cluster with `--workers` workers (default: the cluster's own default), for
    /// the examples that run in-process only: refuses `--cluster local:N` and
    /// `listen:ADDR:N` ([`ClusterError::InProcessOnly`]).
    pub fn local_cluster(&self) -> Result<LocalCluster, ClusterError> {
        if self.cluster != ClusterSpec::InProcess {
            return Err(ClusterError::InProcessOnly { spec: self.cluster });
        }
        Ok(self.in_process()?)
    }

    /// The in-process cluster with `--workers` workers.
    fn in_process(&self) -> Result<LocalCluster, Error> {
        let mut builder = LocalCluster::builder();
        if let Some(workers) = self.workers {
            builder = builder.workers(workers);
        }
        builder.build()
    }

    /// Builds `program` on the cluster `--cluster` names and returns the cluster with what
    /// `program` returned (its handles), in the driver.
    ///
    /// `inproc`: builds the in-process cluster ([`ClusterArgs::local_cluster`]) and the
    /// program on its context. `local:N` and `listen:ADDR:N`: launches the TCP cluster
    /// ([`dstream_tcp::ClusterBuilder::launch`]); the worker processes of `local:N` are this
    /// executable with this process's own arguments, so they parse the same flags and build
    /// the same program. In a worker process this call builds the program, serves the driver
    /// and exits the process: it never returns.
    ///
    /// Every dataset and stream the job uses must be built by `program` (every process builds
    /// it), which must not run jobs; outputs (`foreach_rdd`) run in the driver only.
    pub fn launch<H>(
        &self,
        program: impl FnOnce(&Context) -> Result<H, Error>,
    ) -> Result<(ExampleCluster, H), ClusterError> {
        self.launch_with_worker_args(std::env::args_os().skip(1), program)
    }

    /// [`ClusterArgs::launch`], with `worker_args` as the arguments of the worker processes
    /// of `local:N` (a test re-running its own executable passes `--exact <its name>`).
    pub fn launch_with_worker_args<H, I, S>(
        &self,
        worker_args: I,
        program: impl FnOnce(&Context) -> Result<H, Error>,
    ) -> Result<(ExampleCluster, H), ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let builder = match self.cluster {
            ClusterSpec::InProcess => {
                let cluster = self.in_process()?;
                let handles = program(&cluster.context())?;
                return Ok((ExampleCluster::InProcess(cluster), handles));
            }
            _ if self.workers.is_some() => {
                return Err(ClusterError::Flags(format!(
                    "--workers is for the in-process cluster; --cluster {} names its number of workers",
                    self.cluster
                )))
            }
            ClusterSpec::Local(n) => TcpCluster::builder().local(n).worker_args(worker_args),
            ClusterSpec::Listen { addr, workers } => TcpCluster::builder().listen(addr, workers),
        };
        let (cluster, handles) = builder.launch(program)?;
        Ok((ExampleCluster::Tcp(Box::new(cluster)), handles))
    }
}

/// The cluster an example runs on ([`ClusterArgs::launch`]): in-process or over TCP.
#[derive(Debug)]
pub enum ExampleCluster {
    /// The in-process cluster (`--cluster inproc`).
    InProcess(LocalCluster),
    /// The TCP cluster's driver (`--cluster local:N` or `listen:ADDR:N`).
    Tcp(Box<TcpCluster>),
}

impl ExampleCluster {
    /// The context to create datasets in (the one the program was built on).
    pub fn context(&self) -> Context {
        match self {
            ExampleCluster::InProcess(cluster) => cluster.context(),
            ExampleCluster::Tcp(cluster) => cluster.context(),
        }
    }

    /// Kills worker `index` as a machine failure would: the in-process cluster's worker
    /// ([`LocalCluster::kill_worker`]), or the local worker process by SIGKILL
    /// ([`dstream_tcp::Cluster::kill_worker`]; a worker started elsewhere cannot be killed
    /// from here).
    pub fn kill_worker(&self, index: u32) -> Result<(), ClusterError> {
        match self {
            ExampleCluster::InProcess(cluster) => Ok(cluster.kill_worker(WorkerId(index))?),
            ExampleCluster::Tcp(cluster) => Ok(cluster.kill_worker(index)?),
        }
    }
}

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

/// How a run should end.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long, or on Ctrl-C.
    Elapsed(Duration),
    /// When `done` reports the end of the input, or on Ctrl-C.
    InputEnds,
    /// On Ctrl-C only.
    Interrupted,
}

impl Until {
    /// After `seconds` if given, else on Ctrl-C.
    pub fn seconds(seconds: Option<u64>) -> Until {
        seconds.map_or(Until::Interrupted, |s| Until::Elapsed(Duration::from_secs(s)))
    }
}

/// Waits for the end of the run, then stops the context gracefully, so every record received
/// is processed. `input_done` receives a message when the input ends (for `Until::InputEnds`).
/// Ctrl-C (SIGINT) or SIGTERM ends the run early, gracefully too: the batch in progress
/// finishes (`dstream_storage::SignalsExt`); a second one exits at once.
pub fn run_until(
    handle: &StreamingHandle,
    until: Until,
    input_done: Option<std::sync::mpsc::Receiver<()>>,
) -> Result<(), Error> {
    if let Some(done) = input_done {
        // The end of the input stops the context, from a thread of its own.
        let ssc = handle.context().clone();
        std::thread::spawn(move || {
            let _ = done.recv();
            let _ = ssc.stop(true);
        });
    }
    let ended = match until {
        Until::Elapsed(d) => handle.await_termination_or_signal_timeout(d)?.is_some(),
        Until::InputEnds | Until::Interrupted => {
            handle.await_termination_or_signal()?;
            true
        }
    };
    if !ended {
        handle.stop(true)?;
    }
    Ok(())
}

/// Parses the flags and runs `run`: the `main` of every example. `--help` (or `-h`) prints
/// the flags with their descriptions and defaults (exit code 0); a malformed command line is
/// refused with a message (exit code 2); an error of the run is reported on stderr (exit code
/// 1).
pub fn main_with<A: clap::Parser>(run: impl FnOnce(A) -> Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match run(A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `reader` to its end and hands its lines (without their `\n` or `\r\n`) to `push`,
/// one call per buffer fill of up to `buffer_bytes`, with every line completed in that fill: a
/// push is a chunk of lines, not one line (each push is one unit of input for the stream). A
/// line cut by the end of a fill goes with the next one; a last line without terminator is
/// kept. Invalid UTF-8 is replaced (`U+FFFD`). Stops early when `push` returns `false`.
pub fn read_line_chunks(
    reader: impl std::io::Read,
    buffer_bytes: usize,
    mut push: impl FnMut(Vec<String>) -> bool,
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(buffer_bytes.max(1), reader);
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let filled = match reader.fill_buf() {
            Ok(filled) => filled,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if filled.is_empty() {
            break;
        }
        let (start, n) = (partial.len(), filled.len());
        partial.extend_from_slice(filled);
        reader.consume(n);
        // Only the new bytes can hold a terminator the earlier fills did not end at.
        let Some(last) = partial[start..].iter().rposition(|&b| b == b'\n').map(|i| start + i) else { continue };
        let rest = partial.split_off(last + 1);
        // `partial` ends with the fill's last terminator: its lines are the pieces before it.
        let lines = partial[..last]
            .split(|&b| b == b'\n')
            .map(|line| String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned())
            .collect();
        partial = rest;
        if !push(lines) {
            return Ok(());
        }
    }
    if !partial.is_empty() {
        let line = partial.strip_suffix(b"\r").unwrap_or(&partial);
        push(vec![String::from_utf8_lossy(line).into_owned()]);
    }
    Ok(())
}

/// The words of a line, split at whitespace.
pub fn words_of(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The program of the stateful network word counts: the words of the lines `receiver` reads,
/// with their running totals kept by `update_state_by_key` in `partitions` partitions, the
/// first 20 printed every batch.
pub fn print_running_word_totals(
    ssc: &StreamingContext,
    receiver: SocketTextReceiver,
    partitions: usize,
) -> Result<(), Error> {
    let words = ssc.receiver_stream(receiver).flat_map(|line| words_of(&line));
    // `values` are the word's ones in this batch (empty if it had none), `total` its count so
    // far; the new total is kept (returning `None` would drop the word).
    let totals = words.map(|word| (word, 1u64)).update_state_by_key(
        |values: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + values.iter().sum::<u64>()),
        partitions,
    )?;
    totals.print(20)
}

/// The smallest multiple of `slide` of at least 10 s: the default interval of a stateful
/// stream's data checkpoints, shown in the examples' banners.
pub fn default_checkpoint_interval(slide: Duration) -> Duration {
    let min = Duration::from_secs(10);
    if slide.is_zero() {
        return min;
    }
    let k = min.as_nanos().div_ceil(slide.as_nanos()).max(1);
    slide * u32::try_from(k).unwrap_or(u32::MAX)
}

/// The partitions of a keyed stream's state: two per core, so every core has work while the
/// slowest partition does not hold up the batch.
pub fn state_partitions() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The `k` largest counts, largest first (ties by key), found by a partial selection:
/// O(n + k log k) rather than a full sort.
pub fn top_k<K: Ord>(k: usize, mut counts: Vec<(K, u64)>) -> Vec<(K, u64)> {
    let order = |a: &(K, u64), b: &(K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if k == 0 {
        return Vec::new();
    }
    if counts.len() > k {
        counts.select_nth_unstable_by(k - 1, order);
        counts.truncate(k);
    }
    counts.sort_unstable_by(order);
    counts
}

/// The words of `records` with their number of occurrences, counted in place: a word is copied
/// into a `String` once (when first seen), not once per occurrence. The keys are owned so the
/// map's comparisons stay within the map rather than reaching into the records.
pub fn word_counts(records: &[Record]) -> Vec<(String, u64)> {
    let mut counts: FixedMap<String, u64> = FixedMap::default();
    for record in records {
        for word in record.words() {
            match counts.get_mut(word) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(word.to_owned(), 1);
                }
            }
        }
    }
    counts.into_iter().collect()
}

/// [`top_k`] of borrowed counts: only the `k` winners' keys are cloned.
pub fn top_k_borrowed<K: Ord + Clone>(k: usize, counts: &[(K, u64)]) -> Vec<(K, u64)> {
    let refs: Vec<(&K, u64)> = counts.iter().map(|(key, n)| (key, *n)).collect();
    top_k(k, refs).into_iter().map(|(key, n)| (key.clone(), n)).collect()
}

/// The `k` largest counts of a dataset: the top `k` of each partition, on the workers, merged
/// on the driver (only `k` records per partition travel, and only they are copied).
pub fn top_k_of<K: Data + Ord>(k: usize, counts: &Rdd<(K, u64)>) -> Result<Vec<(K, u64)>, Error> {
    Ok(top_k(k, counts.map_partitions_ref(move |_, part| top_k_borrowed(k, part)).collect()?))
}

/// Counts per word over a window of `length` sliding every `slide`, computed incrementally;
/// words whose count falls to zero leave the result.
pub fn windowed_counts(
    ones: &DStream<(String, u64)>,
    length: Duration,
    slide: Duration,
    partitions: usize,
) -> Result<DStream<(String, u64)>, Error> {
    ones.reduce_by_key_and_window_inv_filtered(|a, b| a + b, |a, b| a - b, length, slide, partitions, |(_, n)| *n > 0)
}

/// Registers an output that keeps the `k` largest counts of each window in the returned slot,
/// printing the first `shown` of them per batch unless `quiet`. As [`top_k_of`] does, each
/// partition's top `k` is taken on the workers and merged on the driver; the per-partition
/// step is a stream of the program (not a dataset made inside the output), so worker
/// processes, which build the program but run no outputs, can compute it too.
pub fn track_top(
    counts: &DStream<(String, u64)>,
    k: usize,
    shown: usize,
    quiet: bool,
) -> Result<Arc<Mutex<Vec<(String, u64)>>>, Error> {
    let top: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let latest = Arc::clone(&top);
    let tops = counts.map_partitions_ref(move |_, part| top_k_borrowed(k, part));
    tops.foreach_rdd(move |rdd, time| {
        let best = top_k(k, rdd.collect()?);
        if !quiet {
            if best.is_empty() {
                println!("window ending {time}: empty (no words in the window)");
            } else {
                println!("window ending {time}: {}", format_top(&best[..best.len().min(shown)]));
            }
        }
        *latest.lock().map_err(|_| Error::BatchFailed("a lock was poisoned".into()))? = best;
        Ok(())
    })?;
    Ok(top)
}

/// `key=count` pairs on one line, for a per-batch report.
pub fn format_top<K: Display>(top: &[(K, u64)]) -> String {
    top.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" ")
}

/// Prints a ranking, one `count  key` line each, under a heading.
pub fn print_top<K: Display>(heading: &str, top: &[(K, u64)]) {
    println!("{heading}");
    if top.is_empty() {
        println!("{:>10}  (none)", "");
    }
    for (key, n) in top {
        println!("{n:>10}  {key}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_pushed_one_chunk_per_buffer_fill() {
        let text = "to be\r\nor not\nto be\nthat is\nthe question";
        let mut chunks: Vec<Vec<String>> = Vec::new();
        read_line_chunks(text.as_bytes(), 16, |lines| {
            chunks.push(lines);
            true
        })
        .unwrap();
        // Fills of 16 bytes: "to be\r\nor not\nt", "o be\nthat is\nthe", " question".
        assert_eq!(chunks, vec![vec!["to be", "or not"], vec!["to be", "that is"], vec!["the question"]]);
        let mut calls = 0;
        read_line_chunks(text.as_bytes(), 1 << 16, |lines| {
            calls += 1;
            assert_eq!(lines.len(), 4);
            false // stops at once
        })
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn cluster_specs_parse_into_typed_values_with_clear_errors() {
        assert_eq!("inproc".parse(), Ok(ClusterSpec::InProcess));
        assert_eq!("local:3".parse(), Ok(ClusterSpec::Local(3)));
        let listen = ClusterSpec::Listen { addr: "0.0.0.0:7077".parse().unwrap(), workers: 4 };
        assert_eq!("listen:0.0.0.0:7077:4".parse(), Ok(listen));
        let v6 = ClusterSpec::Listen { addr: "[::1]:7077".parse().unwrap(), workers: 2 };
        assert_eq!("listen:[::1]:7077:2".parse(), Ok(v6));
        for spec in ["inproc", "local:3", "listen:0.0.0.0:7077:4", "listen:[::1]:7077:2"] {
            assert_eq!(spec.parse::<ClusterSpec>().unwrap().to_string(), spec);
        }
        assert_eq!("local:0".parse::<ClusterSpec>(), Err(ClusterSpecError::Workers { value: "0".into() }));
        assert_eq!("local:x".parse::<ClusterSpec>(), Err(ClusterSpecError::Workers { value: "x".into() }));
        assert_eq!("tcp".parse::<ClusterSpec>(), Err(ClusterSpecError::Unknown("tcp".into())));
        assert!(matches!("listen:nowhere:7077:2".parse::<ClusterSpec>(), Err(ClusterSpecError::Addr { .. })));
        assert!(matches!("listen:4".parse::<ClusterSpec>(), Err(ClusterSpecError::Unknown(_))));
        let message = "local:".parse::<ClusterSpec>().unwrap_err().to_string();
        assert!(message.contains("number of workers"), "{message}");
    }

    #[test]
    fn workers_go_with_the_in_process_cluster_only() {
        let args = ClusterArgs { workers: Some(2), cluster: ClusterSpec::Local(2) };
        let refused = args.launch_with_worker_args(Vec::<OsString>::new(), |_| Ok(()));
        assert!(matches!(refused, Err(ClusterError::Flags(_))), "{refused:?}");
        assert_eq!(args.worker_count(), 2);
        let inproc = ClusterArgs { workers: Some(2), cluster: ClusterSpec::InProcess };
        let (cluster, numbers) = inproc.launch(|ctx| ctx.parallelize(vec![1u64, 2, 3], 2)).unwrap();
        assert!(matches!(cluster, ExampleCluster::InProcess(_)));
        assert_eq!(numbers.count().unwrap(), 3);
        let only = ClusterArgs { workers: None, cluster: ClusterSpec::Local(2) }.local_cluster();
        assert!(matches!(only, Err(ClusterError::InProcessOnly { .. })), "{only:?}");
    }

    #[test]
    fn the_default_checkpoint_interval_is_a_multiple_of_the_slide() {
        assert_eq!(default_checkpoint_interval(Duration::from_millis(500)), Duration::from_secs(10));
        assert_eq!(default_checkpoint_interval(Duration::from_secs(3)), Duration::from_secs(12));
        assert_eq!(default_checkpoint_interval(Duration::from_secs(30)), Duration::from_secs(30));
    }

    #[test]
    fn top_k_keeps_the_largest_counts_largest_first_ties_by_key() {
        let counts = vec![("d", 1), ("b", 5), ("a", 5), ("c", 7), ("e", 0)];
        assert_eq!(top_k(3, counts.clone()), vec![("c", 7), ("a", 5), ("b", 5)]);
        assert_eq!(top_k(10, counts.clone()).len(), 5);
        assert_eq!(top_k(0, counts), vec![]);
        let many: Vec<(u32, u64)> = (0..1000).map(|i| (i, u64::from(i % 97))).collect();
        let mut sorted = many.clone();
        sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(10);
        assert_eq!(top_k(10, many), sorted);
    }

    #[test]
    fn top_k_of_merges_the_partitions_tops() -> Result<(), Error> {
        let cluster = dstream::StepCluster::builder().workers(2).build();
        let counts: Vec<(String, u64)> = (0..100u64).map(|i| (format!("w{i:03}"), i % 10)).collect();
        let top = top_k_of(3, &cluster.context().parallelize(counts, 4)?)?;
        assert_eq!(top, vec![("w009".to_string(), 9), ("w019".to_string(), 9), ("w029".to_string(), 9)]);
        Ok(())
    }
}
