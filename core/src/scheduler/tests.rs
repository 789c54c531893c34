//! The batch scheduler in virtual time: no clock, no threads, no sleeps.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Time {
    Time::from_millis(n * 1000)
}

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn config(outputs: u32, checkpoints: Option<CheckpointWrites>, driving: Driving) -> Config {
    Config { interval: SEC, outputs, checkpoints, driving }
}

fn fresh() -> Position {
    Position { zero: Time::ZERO, completed: 0, replay_until: None }
}

/// A clock-driven scheduler with `outputs` outputs and no checkpoints, from zero.
fn clocked(outputs: u32) -> BatchScheduler {
    BatchScheduler::new(config(outputs, None, Driving::Clock), fresh())
}

/// The answer an executor that always succeeds gives to `work`; `drained` for drain checks.
fn success(work: &Work, drained: bool) -> Done {
    match work.phase {
        Phase::CloseInputs { .. } => Done::Closed { records: 7 },
        Phase::CheckDrained => Done::Drained(drained),
        _ => Done::Ran,
    }
}

/// Drains the work at `now`, every item succeeding and taking no time; returns the items. A
/// drain check ends it: it is the last item returned, still out.
fn drain(s: &mut BatchScheduler, now: Time) -> Vec<Work> {
    let mut items = Vec::new();
    while let Some(work) = s.poll_work() {
        if work.phase == Phase::CheckDrained {
            items.push(work);
            break;
        }
        s.handle_work_done(now, &work, Ok(success(&work, false)));
        items.push(work);
    }
    items
}

/// The batch times whose report is among `items`, in order.
fn reported(items: &[Work]) -> Vec<Time> {
    items.iter().filter(|w| matches!(w.phase, Phase::Report(_))).map(|w| w.time).collect()
}

#[test]
fn a_batch_is_due_at_zero_plus_k_intervals_and_not_a_nanosecond_before() {
    for zero in [Time::ZERO, secs(3), Time::from_nanos(1_700_000_000_123_000_000)] {
        let mut s =
            BatchScheduler::new(config(1, None, Driving::Clock), Position { zero, completed: 0, replay_until: None });
        for k in 1..=3u64 {
            let due = zero + SEC * k as u32;
            assert_eq!(s.poll_timeout(), Some(due), "zero {zero}, batch {k}");
            s.handle_timeout(due - Duration::from_nanos(1));
            assert_eq!(s.poll_work(), None, "one nanosecond before batch {k} (zero {zero})");
            assert_eq!(s.poll_timeout(), Some(due), "still due at {due}");
            s.handle_timeout(due);
            assert_eq!(s.poll_timeout(), None, "no timer while batch {k} runs");
            assert_eq!(reported(&drain(&mut s, due)), [due], "zero {zero}");
            assert!(s.poll_timeout().is_some_and(|t| t > due), "the next timer is later than now");
        }
    }
}

#[test]
fn a_fresh_start_rounds_the_zero_time_down_to_the_interval() {
    let cases = [(ms(0), ms(0)), (ms(999), ms(0)), (ms(1000), ms(1000)), (ms(2500), ms(2000))];
    for (now, zero) in cases {
        assert_eq!(Position::fresh(now, SEC), Position { zero, completed: 0, replay_until: None }, "at {now}");
    }
}

#[test]
fn a_late_wake_up_runs_the_missed_batches_one_at_a_time_in_order() {
    let mut s = clocked(1);
    let now = ms(3500);
    s.handle_timeout(now);
    let mut times = Vec::new();
    while let Some(work) = s.poll_work() {
        // One item at a time: nothing more until this one is reported.
        assert_eq!(s.poll_work(), None, "a second item while {work:?} is out");
        if let Phase::Report(report) = &work.phase {
            times.push(work.time);
            assert_eq!(report.scheduling_delay, now - work.time, "batch {} starts at {now}", work.time);
        }
        s.handle_work_done(now, &work, Ok(success(&work, false)));
    }
    assert_eq!(times, [secs(1), secs(2), secs(3)]);
    assert_eq!(s.poll_timeout(), Some(secs(4)));
    assert!(!s.is_stopped());
}

#[test]
fn the_phases_of_a_batch_come_in_order_with_one_item_per_output() {
    use Phase::*;
    let report = || Report(BatchReport::default());
    let outputs = |n: u32| (0..n).map(|index| RunOutput { index }).collect::<Vec<_>>();
    let cases: [(u32, Option<CheckpointWrites>, Vec<Phase>); 4] = [
        (0, None, vec![CloseInputs { from_log: false }, GenerateInputs, Forget, report()]),
        (3, None, [vec![CloseInputs { from_log: false }, GenerateInputs], outputs(3), vec![Forget, report()]].concat()),
        (
            2,
            Some(CheckpointWrites::Async),
            [
                vec![
                    ApplyCheckpoints,
                    CheckCheckpointFailures,
                    CloseInputs { from_log: false },
                    MarkPending,
                    GenerateInputs,
                ],
                outputs(2),
                vec![StartCheckpoints, Forget, MarkCompleted, report()],
            ]
            .concat(),
        ),
        (
            1,
            Some(CheckpointWrites::Inline),
            [
                vec![
                    ApplyCheckpoints,
                    CheckCheckpointFailures,
                    CloseInputs { from_log: false },
                    MarkPending,
                    GenerateInputs,
                ],
                outputs(1),
                vec![StartCheckpoints, ApplyCheckpoints, Forget, MarkCompleted, report()],
            ]
            .concat(),
        ),
    ];
    for (n, checkpoints, expected) in cases {
        let mut s = BatchScheduler::new(config(n, checkpoints, Driving::Steps), fresh());
        assert_eq!(s.step(Time::ZERO), secs(1));
        let phases: Vec<Phase> = drain(&mut s, Time::ZERO)
            .into_iter()
            .map(|w| match w.phase {
                Report(_) => report(),
                phase => phase,
            })
            .collect();
        assert_eq!(phases, expected, "{n} outputs, checkpoints {checkpoints:?}");
    }
}

#[test]
fn the_report_is_timed_from_the_times_given() {
    let mut s = BatchScheduler::new(config(2, None, Driving::Clock), fresh());
    s.handle_timeout(ms(1200));
    // Each item ends 100 ms after the previous one; the outputs take 100 ms and 100 ms.
    let mut now = ms(1200);
    let mut report = None;
    while let Some(work) = s.poll_work() {
        if let Phase::Report(r) = &work.phase {
            report = Some(r.clone());
        } else {
            now = now + Duration::from_millis(100);
        }
        s.handle_work_done(now, &work, Ok(success(&work, false)));
    }
    let report = report.expect("the batch was reported");
    let d = Duration::from_millis;
    // Close, generate, two outputs, forget: 5 items of 100 ms.
    assert_eq!(
        report,
        BatchReport {
            records: 7,
            scheduling_delay: d(200),
            processing_delay: d(500),
            total_delay: d(700),
            outputs: vec![d(100), d(100)],
        }
    );
}

#[test]
fn a_failed_item_stops_the_scheduler_with_its_error_and_nothing_follows() {
    let failing =
        [Phase::CloseInputs { from_log: false }, Phase::GenerateInputs, Phase::RunOutput { index: 1 }, Phase::Forget];
    for fail_at in failing {
        let mut s = clocked(3);
        s.handle_timeout(secs(5));
        let mut seen = Vec::new();
        while let Some(work) = s.poll_work() {
            seen.push(work.phase.clone());
            let result = if work.phase == fail_at {
                Err(Error::Internal("failed on purpose"))
            } else {
                Ok(success(&work, false))
            };
            s.handle_work_done(secs(5), &work, result);
        }
        assert_eq!(seen.last(), Some(&fail_at), "the failed item is the last one emitted");
        assert!(!seen.iter().any(|p| matches!(p, Phase::Report(_))), "a failed batch is not reported");
        match s.poll_stopped() {
            Some(Err(BatchFailure { time, error: Error::Internal(m) })) => {
                assert_eq!((time, m), (secs(1), "failed on purpose"), "failed at {fail_at:?}")
            }
            other => panic!("failed at {fail_at:?}: {other:?}"),
        }
        assert!(s.is_stopped());
        assert_eq!(s.poll_stopped().map(|r| r.is_ok()), None, "the outcome is given once");
        // Nothing comes out after the stop, whatever the runtime does.
        s.handle_timeout(secs(60));
        s.handle_stop(true);
        assert_eq!((s.poll_work(), s.poll_timeout()), (None, None), "failed at {fail_at:?}");
    }
}

#[test]
fn a_graceful_stop_runs_batches_at_once_until_the_inputs_are_drained() {
    // (drain checks answered "not drained" before the stop holds, batch times run after it)
    let cases: [(usize, &[u64]); 3] = [(0, &[]), (1, &[1]), (3, &[1, 2, 3])];
    for (undrained, expected) in cases {
        let mut s = clocked(1);
        s.handle_timeout(ms(500));
        s.handle_stop(true);
        assert_eq!(s.poll_timeout(), None, "a graceful stop does not wait for the clock");
        let mut checks = 0;
        let mut times = Vec::new();
        // The clock stands still: the batches run at once.
        while let Some(work) = s.poll_work() {
            let done = match work.phase {
                Phase::CheckDrained => {
                    checks += 1;
                    Done::Drained(checks > undrained)
                }
                Phase::Report(_) => {
                    times.push(work.time);
                    Done::Ran
                }
                _ => success(&work, false),
            };
            s.handle_work_done(ms(500), &work, Ok(done));
        }
        let want: Vec<Time> = expected.iter().map(|k| secs(*k)).collect();
        assert_eq!(times, want, "{undrained} undrained checks");
        assert!(matches!(s.poll_stopped(), Some(Ok(()))));
        assert_eq!(checks, undrained + 1, "one drain check before each batch and one to stop");
    }
}

#[test]
fn a_graceful_stop_during_a_batch_finishes_it_then_checks_the_inputs() {
    let mut s = clocked(1);
    s.handle_timeout(secs(1));
    let first = s.poll_work().expect("batch 1 runs");
    s.handle_stop(true);
    s.handle_work_done(secs(1), &first, Ok(success(&first, false)));
    let items = drain(&mut s, secs(1));
    assert_eq!(reported(&items), [secs(1)], "the batch in progress completes");
    let check = items.last().expect("items");
    assert_eq!(*check, Work { time: secs(2), phase: Phase::CheckDrained }, "the drain check follows the batch");
    s.handle_work_done(secs(1), check, Ok(Done::Drained(true)));
    assert!(matches!(s.poll_stopped(), Some(Ok(()))));
}

#[test]
fn an_immediate_stop_ends_after_the_batch_in_progress_or_at_once_between_batches() {
    // Between batches: at once, even with batches due.
    let mut s = clocked(1);
    s.handle_stop(false);
    assert!(s.is_stopped());
    assert_eq!((s.poll_work(), s.poll_timeout()), (None, None));
    assert!(matches!(s.poll_stopped(), Some(Ok(()))));

    // During a batch, with two more due: the batch completes, no other starts.
    let mut s = clocked(2);
    s.handle_timeout(secs(3));
    let first = s.poll_work().expect("batch 1 runs");
    s.handle_stop(false);
    s.handle_work_done(secs(3), &first, Ok(success(&first, false)));
    let items = drain(&mut s, secs(3));
    assert_eq!(reported(&items), [secs(1)]);
    assert!(matches!(s.poll_stopped(), Some(Ok(()))));
    s.handle_timeout(secs(10));
    assert_eq!(s.poll_work(), None, "nothing after the stop");
}

#[test]
fn a_graceful_request_wins_over_an_immediate_one() {
    let mut s = clocked(1);
    s.handle_timeout(secs(1));
    let first = s.poll_work().expect("batch 1 runs");
    s.handle_stop(false);
    s.handle_stop(true);
    s.handle_stop(false);
    s.handle_work_done(secs(1), &first, Ok(success(&first, false)));
    let items = drain(&mut s, secs(1));
    assert!(!s.is_stopped(), "not before the drain check");
    let check = items.last().expect("items");
    assert_eq!(check.phase, Phase::CheckDrained);
    s.handle_work_done(secs(1), check, Ok(Done::Drained(true)));
    assert!(s.is_stopped());
}

#[test]
fn steps_run_one_batch_each_whatever_the_time() {
    let mut s = BatchScheduler::new(config(1, None, Driving::Steps), fresh());
    assert_eq!(s.poll_timeout(), None, "a stepped scheduler has no timers");
    assert_eq!(s.poll_work(), None, "nothing runs before a step");
    // The time given may lag the batches (no clock) or be far ahead: one batch per step.
    for (k, now) in [(1, Time::ZERO), (2, Time::ZERO), (3, secs(100))] {
        assert_eq!(s.step(now), secs(k));
        assert_eq!(reported(&drain(&mut s, now)), [secs(k)], "step {k}");
        assert_eq!((s.poll_work(), s.poll_timeout()), (None, None), "after step {k}");
    }
}

#[test]
fn a_restart_numbers_batches_from_the_restored_position_and_replays_the_logged_ones() {
    let zero = secs(1_000);
    // (completed before the restart, replayed up to, expected (time, from_log) of the next 3)
    let cases: [(u64, Option<u64>, [(u64, bool); 3]); 3] = [
        (0, None, [(1_001, false), (1_002, false), (1_003, false)]),
        (4, Some(1_004), [(1_005, false), (1_006, false), (1_007, false)]),
        (4, Some(1_006), [(1_005, true), (1_006, true), (1_007, false)]),
    ];
    for (completed, until, expected) in cases {
        let position = Position { zero, completed, replay_until: until.map(secs) };
        let mut s = BatchScheduler::new(config(1, Some(CheckpointWrites::Inline), Driving::Steps), position);
        assert_eq!(s.zero(), zero);
        let mut got = Vec::new();
        for _ in 0..3 {
            let time = s.step(secs(2_000));
            let from_log = drain(&mut s, secs(2_000)).iter().find_map(|w| match w.phase {
                Phase::CloseInputs { from_log } => Some(from_log),
                _ => None,
            });
            got.push((time, from_log));
        }
        let want: Vec<(Time, Option<bool>)> = expected.iter().map(|(t, l)| (secs(*t), Some(*l))).collect();
        assert_eq!(got, want, "completed {completed}, replay until {until:?}");
    }
}

#[test]
#[should_panic(expected = "reported")]
fn reporting_an_item_that_was_not_polled_is_a_bug() {
    let mut s = clocked(1);
    s.handle_timeout(secs(1));
    let work = s.poll_work().expect("batch 1 runs");
    let other = Work { time: work.time, phase: Phase::Forget };
    s.handle_work_done(secs(1), &other, Ok(Done::Ran));
}

#[test]
#[should_panic(expected = "reported as")]
fn a_result_of_the_wrong_kind_is_a_bug() {
    let mut s = clocked(1);
    s.handle_timeout(secs(1));
    let close = s.poll_work().expect("batch 1 runs");
    assert!(matches!(close.phase, Phase::CloseInputs { .. }));
    s.handle_work_done(secs(1), &close, Ok(Done::Ran));
}
