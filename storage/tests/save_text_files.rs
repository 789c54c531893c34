//! `save_as_text_files`: one directory per batch, one file per partition, written atomically.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{listen, TempDir};
use dstream::{ManualClock, QueueHandle, StepCluster, StreamingContext, Time};
use dstream_storage::{write_text_dir, DStreamExt};

/// Every file under `dir`, by path relative to it, with its contents.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_string_lossy().into_owned();
                out.insert(rel, fs::read_to_string(&path).expect("read"));
            }
        }
    }
    out
}

/// A context on a manual clock whose queue stream of `partitions` partitions is saved under
/// `prefix`.
fn saving(prefix: &Path, partitions: usize) -> (StreamingContext, QueueHandle<String>) {
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    let (queue, lines) = ssc.queue_stream::<String>(partitions);
    lines.save_as_text_files(prefix, ".txt").expect("register the output");
    (ssc, queue)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn run(prefix: &Path, partitions: usize, batches: &[Vec<String>]) {
    let (ssc, queue) = saving(prefix, partitions);
    for batch in batches {
        queue.push(batch.clone());
        ssc.step().expect("batch");
    }
}

#[test]
fn each_batch_is_a_directory_with_one_file_per_partition() {
    let out = TempDir::new("save");
    let batches = vec![strings(&["a", "b", "c", "d"]), vec![], strings(&["x"])];
    run(&out.path().join("lines"), 3, &batches);
    let expected: BTreeMap<String, String> = [
        ("lines-1000.txt/part-00000", "a\n"),
        ("lines-1000.txt/part-00001", "b\n"),
        ("lines-1000.txt/part-00002", "c\nd\n"),
        ("lines-2000.txt/part-00000", ""),
        ("lines-2000.txt/part-00001", ""),
        ("lines-2000.txt/part-00002", ""),
        ("lines-3000.txt/part-00000", ""),
        ("lines-3000.txt/part-00001", ""),
        ("lines-3000.txt/part-00002", "x\n"),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(tree(out.path()), expected, "no temporary directory remains");
}

#[test]
fn writing_a_batch_again_replaces_it_whole() {
    let out = TempDir::new("rerun");
    let prefix = out.path().join("lines");
    let batches = vec![strings(&["a", "b", "c"]), strings(&["d"])];
    run(&prefix, 3, &batches);
    let first = tree(out.path());
    // The same job again (a restart re-running its batches): the same bytes.
    run(&prefix, 3, &batches);
    assert_eq!(tree(out.path()), first);
    // A leftover of an interrupted write does not survive the next one.
    fs::create_dir(out.path().join(".lines-1000.txt.tmp")).expect("mkdir");
    fs::write(out.path().join(".lines-1000.txt.tmp/part-00007"), "junk").expect("write");
    // Other content for the same batch times replaces the directories: no stale part file.
    run(&prefix, 2, &[strings(&["new"]), strings(&["e", "f"])]);
    let expected: BTreeMap<String, String> = [
        ("lines-1000.txt/part-00000", ""),
        ("lines-1000.txt/part-00001", "new\n"),
        ("lines-2000.txt/part-00000", "e\n"),
        ("lines-2000.txt/part-00001", "f\n"),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(tree(out.path()), expected);
}

#[test]
fn a_reader_never_sees_a_partial_batch() {
    let out = TempDir::new("reader");
    let root = out.path().to_path_buf();
    const BATCHES: u64 = 30;
    const PARTITIONS: usize = 4;
    let batch = |k: u64| -> Vec<String> { (0..2000).map(|i| format!("batch {k} record {i}")).collect() };
    // What a complete directory of batch k holds, concatenated in part order.
    let complete = move |k: u64| -> String { batch(k).iter().map(|l| format!("{l}\n")).collect() };

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (root, done) = (root.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut checked = 0u64;
            loop {
                // Read `done` before listing: the last pass sees every batch.
                let last = done.load(Ordering::SeqCst);
                for entry in fs::read_dir(&root).expect("list") {
                    let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue; // a write in progress, hidden by its name
                    }
                    let millis: u64 = name.trim_start_matches("b-").parse().expect("a batch directory");
                    let dir = root.join(&name);
                    let mut parts: Vec<String> = fs::read_dir(&dir)
                        .expect("list the batch")
                        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                        .collect();
                    parts.sort();
                    let expected: Vec<String> = (0..PARTITIONS).map(|i| format!("part-{i:05}")).collect();
                    assert_eq!(parts, expected, "batch {name} has all its files");
                    let text: String = parts.iter().map(|p| fs::read_to_string(dir.join(p)).expect("read")).collect();
                    assert_eq!(text, complete(millis / 1000), "batch {name} is complete");
                    checked += 1;
                }
                if last {
                    return checked;
                }
                std::thread::yield_now();
            }
        })
    };
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))
        .expect("context");
    let (queue, lines) = ssc.queue_stream::<String>(PARTITIONS);
    lines.save_as_text_files(root.join("b"), "").expect("register the output");
    for k in 1..=BATCHES {
        queue.push(batch(k));
        ssc.step().expect("batch");
    }
    done.store(true, Ordering::SeqCst);
    let checked = reader.join().expect("the reader saw only complete batches");
    assert!(checked >= BATCHES, "the last pass checks every batch ({checked})");
    assert_eq!(fs::read_dir(&root).expect("list").count() as u64, BATCHES, "no temporary directory remains");
}

#[test]
fn a_write_error_fails_the_batch_and_names_the_path() {
    let out = TempDir::new("error");
    // A file where a directory should be created.
    fs::write(out.path().join("blocked"), "a file").expect("write");
    let (ssc, queue) = saving(&out.path().join("blocked").join("lines"), 1);
    let events = listen(&ssc);
    queue.push(strings(&["a"]));
    let error = ssc.step().expect_err("the batch fails").to_string();
    assert!(error.contains("blocked") && error.contains("create directory"), "{error}");
    let reported = events.failures.try_recv().expect("the listener hears of the failure");
    assert_eq!(reported, error);
}

#[test]
fn write_text_dir_needs_a_final_name() {
    let err = write_text_dir::<String>("/", &[]).expect_err("no name");
    assert!(err.to_string().contains("no final name"), "{err}");
}
