//! The driver process killed (SIGKILL) and started again on the same checkpoint directory: the
//! restarted driver resumes the stream from its checkpoints, as in the restart suite, and the
//! batch-keyed output files equal an uninterrupted run's. And a worker process killed and
//! started again in the middle of the same checkpointed stream.
//!
//! Each test runs process trees in turn: this test executable re-run as a driver (the
//! test function again, told so by [`DIR_ENV`]), which starts three worker processes of the
//! same executable ([`Cluster::builder`]`.local(3)`); every process builds the same program
//! with [`StreamingContext::get_or_create`] on a [`LocalFs`] in one shared directory (the
//! workers write their state checkpoints there). The processes write to one inherited pipe:
//! the driver reports its progress on it, and its end of file says that every process of the
//! tree has exited, the workers included, once the driver is gone.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use dstream::{Error, ManualClock, QueueHandle, Rdd, StreamingContext, Time, WorkerId};
use dstream_inproc::LocalCluster;
use dstream_storage::LocalFs;
use dstream_tcp::Cluster;

/// Set in a driver process (and inherited by its workers): the shared directory.
const DIR_ENV: &str = "DSTREAM_TEST_RESTART_DIR";
/// Set in a driver process: where its run stops to be killed ([`Stop`]).
const STOP_ENV: &str = "DSTREAM_TEST_RESTART_STOP";
/// What the processes print on the pipe, after this prefix.
const REPORT: &str = "dstream-test:";
/// The batches of a whole run.
const BATCHES: u64 = 10;
/// The most one process tree may take before the test fails instead of hanging.
const RUN_WAIT_MAX: Duration = Duration::from_secs(120);
const SECOND: Duration = Duration::from_secs(1);

type Page = (String, u64);

/// Where a first run stops, for the test to kill it there.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// Runs every batch.
    Never,
    /// After batch `k` completed, before the next one starts.
    After(u64),
    /// In batch `k`, after its first output ran and before its second.
    BetweenOutputs(u64),
    /// In batch `k`, while the workers run its tasks: every task of the batch's transform
    /// waits for the kill.
    InTasks(u64),
    /// Not at all, but before batch `k` the driver kills worker process 1 and starts it again
    /// (it opens the shared directory while the others write checkpoints there).
    RestartWorker(u64),
}

impl Stop {
    fn parse(text: &str) -> Stop {
        let (kind, k) = text.split_once(':').unwrap_or((text, "0"));
        let k = k.parse().unwrap();
        match kind {
            "after" => Stop::After(k),
            "outputs" => Stop::BetweenOutputs(k),
            "tasks" => Stop::InTasks(k),
            "worker" => Stop::RestartWorker(k),
            _ => Stop::Never,
        }
    }

    fn text(self) -> String {
        match self {
            Stop::Never => "never".into(),
            Stop::After(k) => format!("after:{k}"),
            Stop::BetweenOutputs(k) => format!("outputs:{k}"),
            Stop::InTasks(k) => format!("tasks:{k}"),
            Stop::RestartWorker(k) => format!("worker:{k}"),
        }
    }
}

/// The page views of batch `k` (from 1): different every batch.
fn views(k: u64) -> Vec<Page> {
    (0..(20 + k % 7))
        .map(|i| {
            (
                ["home", "news", "about", "shop", "blog", "faq"][((k * 7 + i * 5) % 6) as usize].to_string(),
                1 + (k + i) % 4,
            )
        })
        .collect()
}

fn batch_of(time: Time) -> u64 {
    time.as_millis() / 1000
}

/// Blocks the calling thread until the process is killed.
fn wait_for_the_kill() -> ! {
    loop {
        std::thread::park();
    }
}

/// A report on the pipe (standard output is line-buffered; in the test process the harness
/// captures it).
#[allow(clippy::print_stdout)] // The pipe is how the processes report.
fn report(line: &str) {
    println!("{REPORT} {line}");
}

/// An output writing each batch's sorted records to `out/{name}-{batch}` (a new file renamed
/// over the old: batch-keyed and idempotent), and noting every run in `out/runs.log`.
fn sink(out: PathBuf, name: &'static str, stop: Stop) -> impl Fn(&Rdd<Page>, Time) -> Result<(), Error> + Send + Sync {
    move |rdd, time| {
        let mut records = rdd.collect()?;
        records.sort();
        let text: String = records.iter().map(|(page, n)| format!("{page} {n}\n")).collect();
        let file = out.join(format!("{name}-{:02}", batch_of(time)));
        let tmp = out.join(format!(".{name}-{:02}.tmp", batch_of(time)));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let mut runs = std::fs::OpenOptions::new().create(true).append(true).open(out.join("runs.log")).unwrap();
        runs.write_all(format!("{name} {}\n", batch_of(time)).as_bytes()).unwrap();
        if name == "totals" && stop == Stop::BetweenOutputs(batch_of(time)) {
            report(&format!("between the outputs of batch {}", batch_of(time)));
            wait_for_the_kill();
        }
        Ok(())
    }
}

/// The program: running page-view totals (checkpointed every 3 batches) and views over a
/// sliding 4 s window with its inverse (checkpointed every 2 batches), each to its files.
/// With `hold` (a file), the tasks of batch `k` of [`Stop::InTasks`] wait while it exists.
fn program(ssc: &StreamingContext, out: &Path, stop: Stop, hold: PathBuf) -> Result<QueueHandle<Page>, Error> {
    let (queue, views) = ssc.queue_stream::<Page>(3);
    let views = views.transform(move |rdd, time| {
        let hold = hold.clone();
        Ok(rdd.map(move |view| {
            if stop == Stop::InTasks(batch_of(time)) && hold.exists() {
                report(&format!("a task of batch {} waits", batch_of(time)));
                wait_for_the_kill();
            }
            view
        }))
    });
    let totals = views
        .update_state_by_key(|vs: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()), 3)?
        .checkpoint(3 * SECOND)?;
    let windowed = views
        .reduce_by_key_and_window_inv_with_partitions(|a, b| a + b, |a, b| a - b, 4 * SECOND, SECOND, 2)?
        .checkpoint(2 * SECOND)?;
    totals.foreach_rdd(sink(out.to_path_buf(), "totals", stop))?;
    windowed.foreach_rdd(sink(out.to_path_buf(), "window", stop))?;
    Ok(queue)
}

/// Builds the program on `ctx`, resuming from `dir/checkpoints` if it holds checkpoints.
fn build(ctx: &dstream::Context, dir: &Path, stop: Stop) -> Result<(StreamingContext, QueueHandle<Page>), Error> {
    let storage = LocalFs::new(dir.join("checkpoints")).unwrap();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let (out, hold) = (dir.join("out"), dir.join("hold"));
    StreamingContext::get_or_create(ctx.clone(), SECOND, clock, dstream_storage::checkpointing(storage), |ssc| {
        program(ssc, &out, stop, hold)
    })
}

/// Runs the batches a (possibly resumed) context still has to run, up to [`BATCHES`],
/// pushing the input of those whose input was not logged, calling `before(k)` before batch
/// `k`.
fn run(ssc: &StreamingContext, queue: &QueueHandle<Page>, stop: Stop, mut before: impl FnMut(u64)) {
    let resumed = ssc.resumed();
    let first = resumed.map_or(1, |r| batch_of(r.next_batch));
    let logged_until = resumed.map_or(0, |r| batch_of(r.logged_until));
    if let Some(r) = resumed {
        report(&format!("resumed at batch {first}, logged until batch {}", batch_of(r.logged_until)));
    }
    for k in first..=BATCHES {
        before(k);
        if k > logged_until {
            queue.push(views(k));
        }
        ssc.step().unwrap();
        report(&format!("batch {k} done"));
        if stop == Stop::After(k) {
            wait_for_the_kill();
        }
    }
}

/// The driver role (and, through `launch`, the worker role) of a test process.
fn driver_process(dir: &Path) {
    let stop = std::env::var(STOP_ENV).map_or(Stop::Never, |s| Stop::parse(&s));
    let test = std::env::args().skip_while(|a| a != "--exact").nth(1).unwrap();
    let (cluster, (ssc, queue)) = Cluster::builder()
        .local(3)
        .worker_args(["--exact", &test, "--nocapture", "--test-threads", "1"])
        .threads(2)
        .slots(2)
        .heartbeat_timeout(Duration::from_secs(5))
        .workers_wait_max(Duration::from_secs(60))
        .launch(|ctx| build(ctx, dir, stop))
        .unwrap();
    run(&ssc, &queue, stop, |k| {
        if stop == Stop::RestartWorker(k) {
            cluster.kill_worker(1).unwrap();
            assert!(cluster.wait_lost(WorkerId(1), Duration::from_secs(30)), "the driver saw the loss");
            cluster.restart_worker(1).unwrap();
            assert!(cluster.wait_registered(WorkerId(1), Duration::from_secs(30)), "the new process registered");
            report(&format!("worker 1 restarted before batch {k}"));
        }
    });
    drop(ssc);
    drop(cluster);
    report("finished");
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("dstream-tcp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("out")).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A driver process and the reports of its process tree (closed when all have exited).
struct Tree {
    driver: Child,
    reports: mpsc::Receiver<String>,
    deadline: Instant,
}

impl Tree {
    fn start(test: &str, dir: &Path, stop: Stop) -> Tree {
        let mut driver = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads", "1"])
            .env(DIR_ENV, dir)
            .env(STOP_ENV, stop.text())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = BufReader::new(driver.stdout.take().unwrap());
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                // Another process may have written part of a line before a report.
                if let Some(report) = line.find(REPORT).map(|at| &line[at + REPORT.len()..]) {
                    eprintln!("[{}] {}", stop.text(), report.trim());
                    if tx.send(report.trim().to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        Tree { driver, reports, deadline: Instant::now() + RUN_WAIT_MAX }
    }

    /// Waits for the report `line`; returns the reports before it.
    fn wait_for(&self, line: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            match self.reports.recv_timeout(self.deadline.saturating_duration_since(Instant::now())) {
                Ok(report) if report == line => return before,
                Ok(report) => before.push(report),
                Err(e) => panic!("waiting for {line:?} after {before:?}: {e:?}"),
            }
        }
    }

    /// Waits until every process of the tree has closed the pipe (exited); returns the
    /// driver's status.
    fn wait_exit(mut self) -> std::process::ExitStatus {
        loop {
            match self.reports.recv_timeout(self.deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.driver.kill();
                    panic!("the processes did not all exit within {RUN_WAIT_MAX:?}");
                }
            }
        }
        self.driver.wait().unwrap()
    }

    /// SIGKILL to the driver; waits until its workers have exited too.
    fn kill(mut self) {
        self.driver.kill().unwrap();
        let status = self.wait_exit();
        assert!(!status.success(), "the driver was killed: {status:?}");
    }
}

impl Drop for Tree {
    /// A failing test leaves no driver behind (its workers exit when it is gone).
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Every file of `out`: name and content.
fn files(out: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            let batch_keyed = name.starts_with("totals-") || name.starts_with("window-");
            batch_keyed.then(|| (name, std::fs::read_to_string(e.path()).unwrap()))
        })
        .collect()
}

/// How many times each output ran for each batch: (output, batch) → runs.
fn runs(out: &Path) -> BTreeMap<(String, u64), u32> {
    let mut runs = BTreeMap::new();
    for line in std::fs::read_to_string(out.join("runs.log")).unwrap().lines() {
        let (name, batch) = line.split_once(' ').unwrap();
        *runs.entry((name.to_string(), batch.parse().unwrap())).or_default() += 1;
    }
    runs
}

/// The output files of an uninterrupted run of the program on a `LocalCluster` of three.
fn uninterrupted() -> &'static BTreeMap<String, String> {
    static FILES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = TempDir::new("uninterrupted");
        let cluster = LocalCluster::builder().workers(3).threads(2).slots(2).build().unwrap();
        let (ssc, queue) = build(&cluster.context(), &dir.0, Stop::Never).unwrap();
        run(&ssc, &queue, Stop::Never, |_| {});
        let files = files(&dir.0.join("out"));
        assert_eq!(files.len() as u64, 2 * BATCHES);
        files
    })
}

/// Runs `test`'s driver until `stop`, kills it there (after `at_stop` reported), restarts it
/// on the same directory and checks the outputs; returns how often each output ran.
fn kill_and_restart(test: &str, stop: Stop, at_stop: &str) -> BTreeMap<(String, u64), u32> {
    let dir = TempDir::new(test);
    if matches!(stop, Stop::InTasks(_)) {
        std::fs::write(dir.0.join("hold"), b"").unwrap();
    }
    let first = Tree::start(test, &dir.0, stop);
    first.wait_for(at_stop);
    first.kill();
    // The held tasks died with their processes; the restarted run must not wait.
    let _ = std::fs::remove_file(dir.0.join("hold"));

    let second = Tree::start(test, &dir.0, Stop::Never);
    let before = second.wait_for("finished");
    assert!(before.iter().any(|r| r.starts_with("resumed at batch")), "the second driver resumed: {before:?}");
    assert!(second.wait_exit().success());

    let got = files(&dir.0.join("out"));
    assert_eq!(&got, uninterrupted(), "the outputs after a kill at {stop:?}");
    runs(&dir.0.join("out"))
}

/// Asserts every output ran exactly once for every batch but `twice` (each output of them
/// at most twice: once before the kill and once after).
fn assert_once_but(runs: &BTreeMap<(String, u64), u32>, twice: &[(&str, u64)]) {
    for output in ["totals", "window"] {
        for k in 1..=BATCHES {
            let n = runs.get(&(output.to_string(), k)).copied().unwrap_or(0);
            let expected = if twice.contains(&(output, k)) { 2 } else { 1 };
            assert_eq!(n, expected, "runs of {output} for batch {k}: {runs:?}");
        }
    }
}

/// In a driver or worker process, plays its role and returns true.
fn as_child() -> bool {
    match std::env::var_os(DIR_ENV) {
        Some(dir) => {
            driver_process(Path::new(&dir));
            true
        }
        None => false,
    }
}

#[test]
fn a_driver_killed_between_batches_resumes_from_its_checkpoints() {
    if as_child() {
        return;
    }
    let runs = kill_and_restart(
        "a_driver_killed_between_batches_resumes_from_its_checkpoints",
        Stop::After(5),
        "batch 5 done",
    );
    // The batches that completed before the kill ran their outputs once, and not again.
    assert_once_but(&runs, &[]);
}

#[test]
fn a_driver_killed_between_the_outputs_of_a_batch_runs_that_batch_again() {
    if as_child() {
        return;
    }
    let runs = kill_and_restart(
        "a_driver_killed_between_the_outputs_of_a_batch_runs_that_batch_again",
        Stop::BetweenOutputs(4),
        "between the outputs of batch 4",
    );
    // The interrupted batch runs again from its logged input, with its outputs: the one that
    // ran before the kill rewrites the same file.
    assert_once_but(&runs, &[("totals", 4)]);
}

#[test]
fn a_driver_killed_while_its_workers_run_a_batch_runs_that_batch_after_the_restart() {
    if as_child() {
        return;
    }
    let runs = kill_and_restart(
        "a_driver_killed_while_its_workers_run_a_batch_runs_that_batch_after_the_restart",
        Stop::InTasks(7),
        "a task of batch 7 waits",
    );
    // No output of batch 7 had run: it runs once, after the restart.
    assert_once_but(&runs, &[]);
}

#[test]
fn a_worker_process_restarted_in_a_checkpointed_stream_changes_no_output() {
    if as_child() {
        return;
    }
    let test = "a_worker_process_restarted_in_a_checkpointed_stream_changes_no_output";
    let dir = TempDir::new(test);
    let tree = Tree::start(test, &dir.0, Stop::RestartWorker(5));
    let before = tree.wait_for("finished");
    assert!(before.iter().any(|r| r == "worker 1 restarted before batch 5"), "{before:?}");
    assert!(tree.wait_exit().success());
    assert_eq!(&files(&dir.0.join("out")), uninterrupted());
    assert_once_but(&runs(&dir.0.join("out")), &[]);
}
