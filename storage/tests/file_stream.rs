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

    // A file already read is not read again when it changes: the change is reported.
    {
        use std::io::Write;
        let mut a = fs::OpenOptions::new().append(true).open(d.join("a.txt")).expect("open");
        a.write_all(b"appended later\n").expect("append");
    }
    wait_for_message(&events.errors, &mut errors, "about the change to a.txt", |m| {
        m.contains("a.txt") && m.contains("changed after it was read")
    });
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
    let changed: Vec<&String> = errors.iter().filter(|m| m.contains("changed after it was read")).collect();
    assert!(changed.len() == 1 && changed[0].contains("grew from 6 to 21 bytes"), "{errors:?}");
}

#[test]
fn a_writer_pausing_between_lines_is_reported_once_per_change_after_the_read() {
    let dir = TempDir::new("slow-writer");
    let path = dir.path().join("slow.txt");
    let receiver = TextFileStreamReceiver::new(dir.path()).poll_interval(Duration::from_millis(5));
    let stats = receiver.stats();
    let ssc = context();
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");
    let mut seen = Vec::new();
    let mut errors = Vec::new();

    // Written in place, a line at a time: the pause after the first line is longer than the
    // receiver needs to find the file stable, so it reads one line.
    fs::write(&path, "line 1\n").expect("write");
    wait_for_records(&batches, &mut seen, 1, "the first line");
    let append = |text: &str| {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(text.as_bytes()).expect("append");
    };
    append("line 2\n");
    wait_for_message(&events.errors, &mut errors, "about the second line", |m| m.contains("grew from 7 to 14 bytes"));
    append("line 3\n");
    wait_for_message(&events.errors, &mut errors, "about the third line", |m| m.contains("grew from 14 to 21 bytes"));
    fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(14).expect("truncate");
    wait_for_message(&events.errors, &mut errors, "about the truncation", |m| m.contains("shrank from 21 to 14 bytes"));

    // More polls, in which a second report of one change would show.
    wait_for_batches(&events.batches, 10);
    running.stop(true).expect("stop");
    seen.extend(batches.try_iter().flatten());
    errors.extend(events.errors.try_iter());
    assert_eq!(seen, vec!["line 1"]);
    let changes: Vec<&String> = errors.iter().filter(|m| m.contains("changed after it was read")).collect();
    assert_eq!(changes.len(), 3, "one report per change: {errors:?}");
    assert!(changes.iter().all(|m| m.contains("slow.txt") && m.contains("rename")), "{changes:?}");
    assert_eq!(stats.changed_after_read(), 3);
}

#[test]
fn an_empty_file_is_read_once_it_has_content() {
    let dir = TempDir::new("empty-first");
    let path = dir.path().join("late.txt");
    let receiver = TextFileStreamReceiver::new(dir.path()).poll_interval(Duration::from_millis(5));
    let ssc = context();
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");

    // Created empty, as a writer that opens the file before writing; filled many polls later.
    fs::write(&path, "").expect("create");
    wait_for_batches(&events.batches, 10);
    fs::write(&path, "x1\nx2\n").expect("fill");
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, 2, "the lines of the filled file");
    running.stop(true).expect("stop");
    let errors: Vec<String> = events.errors.try_iter().collect();
    assert_eq!(seen, vec!["x1", "x2"]);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn an_over_long_line_is_skipped_and_reported_and_the_other_lines_arrive() {
    let dir = TempDir::new("long-line");
    let receiver = TextFileStreamReceiver::new(dir.path()).poll_interval(Duration::from_millis(5)).max_line_bytes(1024);
    let stats = receiver.stats();
    let ssc = context();
    let events = listen(&ssc);
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");

    let text = format!("before\n{}\nafter\n{}", "y".repeat(100_000), "z".repeat(1025));
    fs::write(dir.path().join(".long.tmp"), text).expect("write");
    fs::rename(dir.path().join(".long.tmp"), dir.path().join("long.txt")).expect("rename");
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, 2, "the short lines");
    let mut errors = Vec::new();
    wait_for_message(&events.errors, &mut errors, "about the long lines", |m| m.contains("longer than 1024 bytes"));
    running.stop(true).expect("stop");
    seen.extend(batches.try_iter().flatten());
    assert_eq!(seen, vec!["before", "after"]);
    assert!(errors.last().is_some_and(|m| m.contains("long.txt") && m.contains("2 line(s)") && m.contains("line 2")));
    assert_eq!((stats.lines(), stats.oversized_lines()), (2, 2));
}

#[test]
fn a_large_file_is_stored_in_chunks_of_bounded_bytes_in_order() {
    let dir = TempDir::new("large");
    let chunk_bytes = 64 << 10;
    let receiver =
        TextFileStreamReceiver::new(dir.path()).poll_interval(Duration::from_millis(5)).chunk_bytes(chunk_bytes);
    let stats = receiver.stats();
    let ssc = context();
    let batches = collect_batches(&ssc.receiver_stream(receiver));
    let running = ssc.start().expect("start");

    let lines: Vec<String> = (0..200_000).map(|i| format!("line {i:07}")).collect();
    let content_bytes: usize = lines.iter().map(String::len).sum();
    fs::write(dir.path().join(".large.tmp"), lines.join("\n")).expect("write");
    fs::rename(dir.path().join(".large.tmp"), dir.path().join("large.txt")).expect("rename");
    let mut seen = Vec::new();
    wait_for_records(&batches, &mut seen, lines.len(), "the lines of the large file");
    running.stop(true).expect("stop");
    assert!(seen == lines, "every line once, in order");
    assert!(stats.largest_chunk_bytes() <= chunk_bytes as u64, "{} bytes", stats.largest_chunk_bytes());
    assert!(stats.chunks() >= content_bytes.div_ceil(chunk_bytes) as u64, "{} chunks", stats.chunks());
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
