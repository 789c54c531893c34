//! A cluster across two network namespaces: the driver and worker 0 in one, workers 1 and 2
//! in the other, so input replicas and shuffle fetches cross a real link between them. Once
//! over a veth pair, once over a link that loses 3% of the packets each way and delays the
//! others by 4 ms (`tests/netns/lossy_link.py`, a user-space forwarder between two tun
//! devices: the kernels this runs on may lack the netem qdisc). The outputs must equal the
//! in-process runtime's, byte for byte.
//!
//! Namespaces need root (`ip netns`): elsewhere the tests say why and pass, except under
//! `CI=true`, where they must run.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Context, Error, ManualClock, Rdd, StreamingContext, Time};
use dstream_inproc::LocalCluster;
use dstream_tcp::{Cluster, DRIVER_ADDR_ENV, ROLE_ENV, WORKERS_ENV, WORKER_INDEX_ENV};
use wait_timeout::ChildExt;

/// Set in the driver and worker processes: the file the driver writes its outputs to.
const OUT_ENV: &str = "DSTREAM_TEST_NETNS_OUT";
const DRIVER_ADDR: &str = "10.77.0.1:7077";
const SECRET: &str = "the-netns-test-secret-0123456789";
/// The most a run may take before the test fails instead of hanging.
const RUN_WAIT_MAX: Duration = Duration::from_secs(180);
const BATCHES: u64 = 5;

/// The program every process builds: a batch word count and a streaming one with a window.
struct Program {
    ssc: StreamingContext,
    clock: Arc<ManualClock>,
    lines: dstream::QueueHandle<String>,
    counts: Rdd<(String, u64)>,
    out: Arc<Mutex<String>>,
}

/// Batch `b`'s lines: enough that blocks and shuffles take many packets.
fn lines(b: u64) -> Vec<String> {
    (0..4_000u64)
        .map(|i| {
            let w = |k: u64| format!("word{}", (b * 7919 + i * k) % 1_009);
            format!("{} {} {} {} {}", w(1), w(3), w(7), w(11), w(13))
        })
        .collect()
}

fn program(ctx: &Context) -> Result<Program, Error> {
    let corpus: Vec<String> = (0..3).flat_map(lines).collect();
    let words = ctx.parallelize(corpus, 8)?.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
    let counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);

    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(ctx.clone(), Duration::from_secs(1), clock.clone())?;
    let (lines, stream) = ssc.queue_stream::<String>(4);
    let pairs = stream.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>()).map(|w| (w, 1u64));
    let out = Arc::new(Mutex::new(String::new()));
    for (name, stream) in [
        ("counts", pairs.reduce_by_key(|a, b| a + b)),
        ("window", pairs.reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(3), Duration::from_secs(1))?),
    ] {
        let out = Arc::clone(&out);
        stream.foreach_rdd(move |rdd, time| {
            let mut records = rdd.collect()?;
            records.sort();
            out.lock().unwrap().push_str(&format!("{name} {time} {records:?}\n"));
            Ok(())
        })?;
    }
    Ok(Program { ssc, clock, lines, counts, out })
}

/// Runs the program's jobs; returns every output, as text.
fn run(program: &Program) -> String {
    let mut counts = program.counts.collect().unwrap();
    counts.sort();
    let mut text = format!("batch {counts:?}\n");
    for b in 0..BATCHES {
        program.lines.push(lines(b));
        let info = program.ssc.step().unwrap();
        program.clock.set(info.time);
    }
    text.push_str(&program.out.lock().unwrap());
    text
}

/// The driver's or a worker's process (the role is in the environment).
fn child(out: &Path) {
    let (cluster, program) = Cluster::builder()
        .threads(2)
        .slots(2)
        .heartbeat_timeout(Duration::from_secs(10))
        .workers_wait_max(Duration::from_secs(60))
        .launch(program)
        .unwrap();
    let text = run(&program);
    let lost = cluster.lost_workers();
    drop(program);
    drop(cluster);
    assert!(lost.is_empty(), "workers lost: {lost:?}");
    std::fs::write(out, text).unwrap();
}

/// Runs `ip` with `args`; the error says what failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The link between the namespaces.
#[derive(Clone, Copy, Debug)]
enum Link {
    Veth,
    Lossy { loss: f64, delay_ms: u32, seed: u64 },
}

/// Two namespaces and the link between them, removed when dropped.
struct Net {
    names: [String; 2],
    forwarder: Option<Child>,
    stats: PathBuf,
}

impl Net {
    /// Namespace A holds 10.77.0.1, B 10.77.0.2.
    fn new(link: Link) -> Result<Net, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}{}", std::process::id() % 1_000_000, NEXT.fetch_add(1, Ordering::SeqCst));
        let names = [format!("dstream-{id}-a"), format!("dstream-{id}-b")];
        let stats = std::env::temp_dir().join(format!("dstream-netns-{id}.stats"));
        let mut net = Net { names, forwarder: None, stats };
        for ns in &net.names {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let [a, b] = [net.names[0].clone(), net.names[1].clone()];
        let (dev_a, dev_b) = (format!("dsa{id}"), format!("dsb{id}"));
        match link {
            Link::Veth => {
                ip(&["link", "add", &dev_a, "type", "veth", "peer", "name", &dev_b])?;
            }
            Link::Lossy { loss, delay_ms, seed } => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/lossy_link.py");
                let mut forwarder = Command::new("python3")
                    .args([script, &dev_a, &dev_b, &loss.to_string(), &delay_ms.to_string(), &seed.to_string()])
                    .arg(&net.stats)
                    .stdout(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("python3 {script}: {e}"))?;
                let mut ready = String::new();
                BufReader::new(forwarder.stdout.take().unwrap()).read_line(&mut ready).unwrap();
                net.forwarder = Some(forwarder);
                if ready.trim() != "ready" {
                    return Err(format!("the lossy link did not start: {ready:?}"));
                }
            }
        }
        for (dev, ns, (local, peer)) in
            [(&dev_a, &a, ("10.77.0.1", "10.77.0.2")), (&dev_b, &b, ("10.77.0.2", "10.77.0.1"))]
        {
            ip(&["link", "set", dev, "netns", ns])?;
            match link {
                Link::Veth => ip(&["-n", ns, "addr", "add", &format!("{local}/24"), "dev", dev])?,
                Link::Lossy { .. } => ip(&["-n", ns, "addr", "add", &format!("{local}/32"), "peer", peer, "dev", dev])?,
            }
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(net)
    }

    /// Stops the forwarder of a lossy link: (packets forwarded, packets dropped).
    fn link_stats(&mut self) -> Option<(u64, u64)> {
        let mut forwarder = self.forwarder.take()?;
        let pid = forwarder.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        forwarder.wait().unwrap();
        let text = std::fs::read_to_string(&self.stats).unwrap();
        let (forwarded, dropped) = text.trim().split_once(' ').unwrap();
        Some((forwarded.parse().unwrap(), dropped.parse().unwrap()))
    }

    /// Starts this test executable in namespace `ns` (0 or 1) with `env`.
    fn spawn(&self, ns: usize, test: &str, out: &Path, env: &[(&str, String)]) -> Child {
        let exe = std::env::current_exe().unwrap();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[ns]]).arg(exe);
        command.args(["--exact", test, "--nocapture", "--test-threads", "1"]);
        command.env(OUT_ENV, out).env("DSTREAM_SECRET", SECRET).env_remove("DSTREAM_SECRET_FILE");
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdin(Stdio::null()).spawn().unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut forwarder) = self.forwarder.take() {
            let _ = forwarder.kill();
            let _ = forwarder.wait();
        }
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = std::fs::remove_file(&self.stats);
    }
}

/// Waits for `child` to exit, up to [`RUN_WAIT_MAX`]; kills it past that.
fn wait(child: &mut Child, what: &str) -> std::process::ExitStatus {
    match child.wait_timeout(RUN_WAIT_MAX).unwrap() {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("{what} did not exit within {RUN_WAIT_MAX:?}");
        }
    }
}

/// Runs the program on a driver and three workers across the namespaces; returns the
/// driver's outputs and the link's packet counts.
fn across(test: &str, link: Link) -> Option<(String, Option<(u64, u64)>)> {
    let mut net = match Net::new(link) {
        Ok(net) => net,
        Err(reason) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: network namespaces are not available here ({reason}); CI runs this as root");
            return None;
        }
        Err(reason) => panic!("network namespaces are needed under CI=true: {reason}"),
    };
    let out = std::env::temp_dir().join(format!("dstream-netns-{}-{test}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let addr = (DRIVER_ADDR_ENV, DRIVER_ADDR.to_string());
    let mut driver = net.spawn(0, test, &out, &[(ROLE_ENV, "driver".into()), addr.clone(), (WORKERS_ENV, "3".into())]);
    let mut workers: Vec<Child> = (0..3u32)
        .map(|i| {
            let env = [(ROLE_ENV, "worker".to_string()), addr.clone(), (WORKER_INDEX_ENV, i.to_string())];
            net.spawn(if i == 0 { 0 } else { 1 }, test, &out, &env)
        })
        .collect();
    let status = wait(&mut driver, "the driver");
    for (i, worker) in workers.iter_mut().enumerate() {
        // Each exits once the driver's connection closes.
        let status = wait(worker, &format!("worker {i}"));
        assert!(status.success(), "worker {i}: {status:?}");
    }
    assert!(status.success(), "the driver: {status:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    Some((text, net.link_stats()))
}

/// The outputs of the in-process runtime.
fn in_process() -> String {
    let local = LocalCluster::builder().workers(3).threads(2).slots(2).build().unwrap();
    run(&program(&local.context()).unwrap())
}

/// In a driver or worker process, plays its role and returns true.
fn as_child() -> bool {
    match std::env::var_os(OUT_ENV) {
        Some(out) => {
            child(Path::new(&out));
            true
        }
        None => false,
    }
}

#[test]
fn a_cluster_across_two_namespaces_matches_the_in_process_runtime() {
    if as_child() {
        return;
    }
    let Some((got, _)) = across("a_cluster_across_two_namespaces_matches_the_in_process_runtime", Link::Veth) else {
        return;
    };
    let expected = in_process();
    assert_eq!(got.lines().count() as u64, 1 + 2 * BATCHES);
    assert_eq!(got, expected);
}

#[test]
fn a_lossy_slow_link_between_the_namespaces_changes_no_output() {
    if as_child() {
        return;
    }
    let link = Link::Lossy { loss: 0.03, delay_ms: 4, seed: 0x10557 };
    let Some((got, stats)) = across("a_lossy_slow_link_between_the_namespaces_changes_no_output", link) else {
        return;
    };
    let (forwarded, dropped) = stats.unwrap();
    eprintln!("the link forwarded {forwarded} packets and dropped {dropped}");
    assert!(dropped > 0 && forwarded > 1_000, "the link must have carried the run and lost some of it");
    assert_eq!(got, in_process());
}
