//! `text_file_stream` against real directories.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use common::{collect_batches, listen, wait_for_batches, wait_for_message, wait_for_records, TempDir};
use dstream::{StepCluster, StreamingContext, SystemClock};
use dstream_storage::TextFileStreamReceiver;

fn context() -> StreamingContext {
    let cluster = StepCluster::builder().workers(2).build();
    StreamingContext::new(cluster.context(), Duration::from_millis(20), Arc::new(SystemClock::new())).expect("context")
}

#[test]
fn new_files_are_read_once_and_old_hidden_and_unreadable_ones_are_not() {
    let dir = TempDir::new("files");
    let d = dir.path();
    fs::write(d.join("old.txt"), "present before the stream\n").expect("write");
    // Polls far enough apart that a file written in place is not seen empty twice.
    let receiver = TextFileStreamReceiver::new(d).poll_interval(Duration::from_millis(20));
    let stats = receiver.stats();
    let ssc = context();
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");
    let mut seen = Vec::new();
    let mut errors = Vec::new();

    // Written in place: read once its size is stable.
    fs::write(d.join("a.txt"), "a1\na2\n").expect("write");
    wait_for_records(&batches, &mut seen, 2, "the lines of a.txt");

    // Written under a hidden name and renamed: the hidden file is never read.
    fs::write(d.join(".b.tmp"), "hidden\n").expect("write");
    fs::write(d.join("_SUCCESS"), "hidden too\n").expect("write");
    fs::create_dir(d.join("sub")).expect("mkdir");
    fs::write(d.join("sub").join("inner.txt"), "in a subdirectory\n").expect("write");
    fs::write(d.join(".b.tmp"), "b1\r\nb2").expect("write");
    fs::rename(d.join(".b.tmp"), d.join("b.txt")).expect("rename");
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("missing"), d.join("broken.txt")).expect("symlink");
    wait_for_records(&batches, &mut seen, 4, "the lines of b.txt");
    #[cfg(unix)]
    wait_for_message(&events.errors, &mut errors, "about the dangling link", |m| m.contains("broken.txt"));

    // A file already read is not read again when it changes.
    fs::write(d.join("a.txt"), "a1\na2\nappended later\n").expect("write");
    fs::write(d.join("c.txt"), b"c1\n\xff\xfe\nc2\n").expect("write");
    wait_for_records(&batches, &mut seen, 6, "the lines of c.txt");
    wait_for_message(&events.errors, &mut errors, "about the invalid line", |m| m.contains("not valid UTF-8"));

    // Polls continue for a while: a file read twice would show.
    wait_for_batches(&events.batches, 10);
    running.stop(true).expect("stop");
    seen.extend(batches.try_iter().flatten());
    errors.extend(events.errors.try_iter());

    assert_eq!(seen, vec!["a1", "a2", "b1", "b2", "c1", "c2"]);
    #[cfg(unix)]
    {
        let broken: Vec<&String> = errors.iter().filter(|m| m.contains("broken.txt")).collect();
        assert!(broken.len() == 1 && broken[0].contains("cannot read"), "reported once: {errors:?}");
    }
    let invalid: Vec<&String> = errors.iter().filter(|m| m.contains("not valid UTF-8")).collect();
    assert!(invalid.len() == 1 && invalid[0].contains("c.txt") && invalid[0].contains("line 2"), "{errors:?}");
    assert_eq!((stats.files(), stats.lines(), stats.invalid_lines()), (3, 6, 1));
    assert_eq!(stats.skipped_files(), u64::from(cfg!(unix)));
}

#[test]
fn a_missing_directory_is_reported_once_and_watched_until_it_appears() {
    let dir = TempDir::new("later");
    let watched = dir.path().join("incoming");
    let receiver = TextFileStreamReceiver::new(&watched).poll_interval(Duration::from_millis(5));
    let ssc = context();
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");
    let mut errors = Vec::new();
    wait_for_message(&events.errors, &mut errors, "about the missing directory", |m| m.contains("cannot list"));
    wait_for_batches(&events.batches, 5);

    fs::create_dir(&watched).expect("mkdir");
    fs::write(watched.join(".first.tmp"), "hello\n").expect("write");
    fs::rename(watched.join(".first.tmp"), watched.join("first.txt")).expect("rename");
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, 1, "the lines of first.txt");
    running.stop(true).expect("stop");
    errors.extend(events.errors.try_iter());
    assert_eq!(seen, vec!["hello"]);
    assert_eq!(errors.iter().filter(|m| m.contains("cannot list")).count(), 1, "{errors:?}");
}

#[test]
fn existing_files_are_read_when_asked() {
    let dir = TempDir::new("existing");
    fs::write(dir.path().join("old.txt"), "old\n").expect("write");
    let receiver =
        TextFileStreamReceiver::new(dir.path()).poll_interval(Duration::from_millis(5)).include_existing(true);
    let ssc = context();
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, 1, "the lines of old.txt");
    running.stop(true).expect("stop");
    assert_eq!(seen, vec!["old"]);
}
