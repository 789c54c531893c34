//! Word counts over a window sliding every batch (the paper's WordCount), with a one-line
//! progress report per batch and the top words of each window.
//!
//! ```text
//! cargo run --release --example wordcount                      # synthetic 100-byte records
//! cargo run --release --example wordcount -- --socket 127.0.0.1:9999
//! some-command | cargo run --release --example wordcount -- --stdin
//! cargo run --release --example wordcount -- --help            # every flag, with its default
//! ```
//!
//! By default it counts synthetic records at 100,000 records/s over a 10 s window sliding every
//! 500 ms batch, for 15 s: the window fills after 10 s and then slides. It starts with a banner
//! saying what it reads, at what rate, the batch interval, the window, the workers and where
//! it checkpoints.
//!
//! Checkpointing is on by default: the context is built with
//! `StreamingContext::get_or_create` on a fresh temporary directory (removed at the end of
//! the run), so the incremental window's state is checkpointed every 10 s and its lineage cut,
//! which keeps memory bounded however long it runs. `--checkpoint-dir DIR` keeps the
//! checkpoints in `DIR` instead (a later run with the same flags resumes from them);
//! `--no-checkpoint` turns checkpointing off, and then the window's lineage reaches back to
//! the first batch and memory grows with the run.
//!
//! `--stdin` reads lines from standard input until it ends, pushing each buffer's lines as one
//! chunk.
//!
//! `--cluster local:N` runs the same program on a driver (this process) and `N` worker
//! processes of this executable over TCP on 127.0.0.1, instead of the in-process cluster
//! (`--cluster inproc`, the default); `--kill-worker-at` then kills worker process 0 with
//! SIGKILL. `--cluster listen:IP:PORT:N` waits for `N` workers started elsewhere (see
//! `dstream_examples::ClusterSpec`).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use dstream::generator::RecordPool;
use dstream::{BatchInfo, Context, DStream, Error, StreamingContext, StreamingListener, SystemClock, Time};
use dstream_examples::{
    default_checkpoint_interval, main_with, print_top, read_line_chunks, run_until, state_partitions, track_top,
    windowed_counts, words_of, ClusterArgs, ClusterSpec, ExampleCluster, Progress, Until,
};
use dstream_storage::{LocalFs, SocketTextReceiver};

/// Word counts over a sliding window, on an in-process cluster or over TCP.
#[derive(Debug, Parser)]
#[command(name = "wordcount")]
struct Args {
    /// Read lines from the TCP server at HOST:PORT instead of synthetic records
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "stdin")]
    socket: Option<String>,
    /// Read lines from standard input (the run ends with the input)
    #[arg(long)]
    stdin: bool,
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 15)]
    seconds: u64,
    /// Synthetic records per second
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    rate: u64,
    /// The batch interval, in milliseconds (the window slides every batch)
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    /// The window's length, in seconds
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    window_s: u64,
    /// Keep the checkpoints in DIR (a later run with the same flags resumes from them)
    /// [default: a temporary directory, removed at the end]
    #[arg(long, value_name = "DIR", conflicts_with = "no_checkpoint")]
    checkpoint_dir: Option<PathBuf>,
    /// Run without checkpointing: the window's lineage, and memory, then grow with the run
    #[arg(long)]
    no_checkpoint: bool,
    /// Kill worker 0 once this many seconds have run, as if its process died (with
    /// --cluster local:N, by SIGKILL), and print the batch delays around the failure (needs
    /// at least 3 workers: input is stored on 2)
    #[arg(long, value_name = "S")]
    kill_worker_at: Option<u64>,
    /// Write an SVG chart of every batch's processing and total delay to FILE (with the
    /// failure marked, with --kill-worker-at)
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print no per-batch lines, only the summary and the last window's top words
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Where the checkpoints go, and whether the directory is removed at the end.
struct CheckpointDir {
    path: PathBuf,
    temporary: bool,
}

impl Args {
    fn checkpoint_dir(&self) -> Option<CheckpointDir> {
        if self.no_checkpoint {
            return None;
        }
        Some(match &self.checkpoint_dir {
            Some(path) => CheckpointDir { path: path.clone(), temporary: false },
            None => CheckpointDir {
                path: std::env::temp_dir().join(format!("dstream-wordcount-{}", std::process::id())),
                temporary: true,
            },
        })
    }

    fn source(&self) -> String {
        match (&self.socket, self.stdin) {
            (Some(addr), _) => format!("lines from the TCP server at {addr}"),
            (None, true) => "lines from standard input".to_string(),
            (None, false) => format!("synthetic 100-byte records at {} records/s", self.rate),
        }
    }
}

/// The words of the input, from the source the flags name; the receiver's end of a channel
/// that hears when standard input ends.
fn words(
    ssc: &StreamingContext,
    args: &Args,
    socket: Option<SocketTextReceiver>,
) -> (DStream<String>, Option<mpsc::Receiver<()>>) {
    if let Some(receiver) = socket {
        return (ssc.receiver_stream(receiver).flat_map(|l| words_of(&l)), None);
    }
    if args.stdin {
        let (input, lines) = ssc.input_stream::<String>();
        let (done, ended) = mpsc::channel();
        if args.cluster.is_worker_process() {
            // A worker process's input stream takes no records: the driver reads stdin.
            return (lines.flat_map(|l| words_of(&l)), Some(ended));
        }
        // Reading stdin blocks, so it has a thread of its own that the context does not wait for.
        std::thread::spawn(move || {
            let read = read_line_chunks(std::io::stdin().lock(), 1 << 16, |lines| input.push_all(lines).is_ok());
            if let Err(e) = read {
                eprintln!("reading standard input: {e}");
            }
            let _ = done.send(());
        });
        return (lines.flat_map(|l| words_of(&l)), Some(ended));
    }
    let records = ssc.generator_stream(RecordPool::standard(), args.rate);
    (records.flat_map(|r| r.words().map(str::to_owned).collect::<Vec<_>>()), None)
}

/// What the run reads, where it runs and checkpoints, and how long.
fn print_banner(args: &Args, batch: Duration, partitions: usize, checkpoints: Option<&CheckpointDir>) {
    println!("wordcount: the top words over a {} s window sliding every {} ms batch", args.window_s, args.batch_ms);
    println!("  input:         {}", args.source());
    println!("  cluster:       {}; the window's counts in {partitions} partitions", args.cluster.describe());
    match checkpoints {
        Some(dir) => println!(
            "  checkpoints:   every {} s to {}{}",
            default_checkpoint_interval(batch).as_secs_f64(),
            dir.path.display(),
            if dir.temporary { " (temporary; --no-checkpoint turns them off)" } else { "" }
        ),
        None => println!("  checkpoints:   off (the window's lineage grows with the run)"),
    }
    if args.stdin {
        println!("  run:           until standard input ends (or Ctrl-C)");
    } else {
        println!("  run:           {} s (Ctrl-C stops earlier, gracefully)", args.seconds);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let window = Duration::from_secs(args.window_s);
    let partitions = state_partitions();
    let checkpoints = args.checkpoint_dir();
    // Resolved before the program is built, so a bad address fails here, with its own error.
    let socket = args.socket.as_deref().map(SocketTextReceiver::new).transpose()?;

    // A worker process of a TCP cluster builds the same program and serves: it prints nothing.
    if !args.cluster.is_worker_process() {
        print_banner(&args, batch, partitions, checkpoints.as_ref());
    }
    if args.kill_worker_at.is_some() && args.cluster.worker_count() < 3 {
        return Err("--kill-worker-at needs at least 3 workers (--workers 3): input is stored on 2".into());
    }
    if args.kill_worker_at.is_some() && matches!(args.cluster.cluster, ClusterSpec::Listen { .. }) {
        return Err("--kill-worker-at kills a worker on this machine: use --cluster inproc or local:N".into());
    }
    let progress = Progress::new(args.quiet);
    let quiet = args.quiet;
    let job = |ssc: &StreamingContext| -> Result<_, Error> {
        ssc.add_listener(progress.clone());
        let (words, input_done) = words(ssc, &args, socket);
        let counts = windowed_counts(&words.map(|w| (w, 1u64)), window, batch, partitions)?;
        let top = track_top(&counts, 10, 5, quiet)?;
        Ok((top, input_done))
    };
    let clock = Arc::new(SystemClock::new());
    // Every process of the cluster builds the program: datasets, streams and outputs.
    let storage = match &checkpoints {
        Some(dir) => Some(dstream_storage::checkpointing(LocalFs::new(&dir.path)?)),
        None => None,
    };
    let program = |ctx: &Context| match storage {
        Some(storage) => StreamingContext::get_or_create(ctx.clone(), batch, clock, storage, job),
        None => StreamingContext::create(ctx.clone(), batch, clock, job),
    };
    // The worker processes of `--cluster local:N` write and read the state's checkpoints too:
    // they get the driver's directory, a temporary one included (which only the driver removes).
    let shared_dir = checkpoints.as_ref().filter(|d| d.temporary).map(|d| d.path.clone().into_os_string());
    let worker_args = std::env::args_os()
        .skip(1)
        .chain(shared_dir.into_iter().flat_map(|dir| [OsString::from("--checkpoint-dir"), dir]));
    let (cluster, (ssc, (top, input_done))) = args.cluster.launch_with_worker_args(worker_args, program)?;
    let cluster = Arc::new(cluster);
    let killer = args.kill_worker_at.map(|s| KillAt::new(&cluster, Duration::from_secs(s)));
    if let Some(killer) = &killer {
        ssc.add_listener(killer.clone());
    }

    // A run of bounded length without checkpoints: the state's lineage grows for its duration.
    ssc.allow_unbounded_lineage();
    let handle = ssc.start()?;
    let until = if input_done.is_some() { Until::InputEnds } else { Until::Elapsed(Duration::from_secs(args.seconds)) };
    run_until(&handle, until, input_done)?;
    progress.summary(batch);
    if let Some(at) = killer.as_ref().and_then(|k| k.killed_at()) {
        println!("the batches around the loss of worker 0:");
        progress.print_around(at, 3, 6);
    }
    if let Some(path) = &args.svg {
        let killed = killer.as_ref().and_then(|k| k.killed_at());
        let on = match args.cluster.cluster {
            ClusterSpec::InProcess => "the in-process cluster".to_string(),
            _ => format!("{} worker processes", args.cluster.worker_count()),
        };
        let title = match killed {
            Some(_) => format!("WordCount on {on}: worker 0 killed"),
            None => format!("WordCount on {on}"),
        };
        std::fs::write(path, progress.svg(&title, killed))?;
    }
    print_top("top words over the last window:", &top.lock().map_err(|_| "a lock was poisoned")?);
    if let Some(dir) = checkpoints.filter(|d| d.temporary) {
        if let Err(e) = std::fs::remove_dir_all(&dir.path) {
            eprintln!("cannot remove the temporary checkpoints in {}: {e}", dir.path.display());
        }
    }
    Ok(())
}

/// Kills worker 0 after the first batch that completes once `after` has run.
struct KillAt {
    cluster: Arc<ExampleCluster>,
    after: Duration,
    first: Mutex<Option<Time>>,
    killed: Mutex<Option<Time>>,
}

impl KillAt {
    fn new(cluster: &Arc<ExampleCluster>, after: Duration) -> Arc<KillAt> {
        Arc::new(KillAt { cluster: Arc::clone(cluster), after, first: Mutex::new(None), killed: Mutex::new(None) })
    }

    fn killed_at(&self) -> Option<Time> {
        *self.killed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StreamingListener for KillAt {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let first = *self.first.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(info.time);
        let mut killed = self.killed.lock().unwrap_or_else(|p| p.into_inner());
        if killed.is_none() && info.time.saturating_since(first) >= self.after {
            match self.cluster.kill_worker(0) {
                Ok(()) => println!(
                    "killed worker 0 after the batch of {:.1} s (from the first batch)",
                    info.time.saturating_since(first).as_secs_f64()
                ),
                Err(e) => eprintln!("cannot kill worker 0: {e}"),
            }
            *killed = Some(info.time);
        }
    }
}

fn main() -> ExitCode {
    main_with(run)
}
