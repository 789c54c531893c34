use std::sync::Arc;
use std::time::Duration;

use super::{AheadKey, AheadMemo, PartitionsAhead, Shape, Tracker};
use crate::ids::{BlockId, StreamId};
use crate::time::Time;

const MS: u64 = 1_000_000;

fn block(seq: u64) -> BlockId {
    BlockId::Input { stream: StreamId(7), seq }
}

fn shape(records_max: usize) -> Shape {
    Shape {
        zero: Time::from_nanos(1_000 * MS),
        interval: Duration::from_millis(500),
        block_interval: Duration::from_millis(200),
        records_max,
    }
}

#[test]
fn a_push_lands_in_the_batch_and_block_interval_the_close_gives_it() {
    // (stamp in ms, batch in ms, block interval within the batch): a batch at t takes what is
    // stamped in (t - 500 ms, t], and its block intervals count from t - 500 ms.
    let cases = [
        (900, 1_500, 0),
        (1_000, 1_500, 0),
        (1_001, 1_500, 0),
        (1_199, 1_500, 0),
        (1_200, 1_500, 1),
        (1_400, 1_500, 2),
        (1_500, 1_500, 2),
        (1_501, 2_000, 0),
        (1_699, 2_000, 0),
        (1_700, 2_000, 1),
        (2_000, 2_000, 2),
    ];
    for (at, batch, interval) in cases {
        let placed = shape(100).place(Time::from_nanos(at * MS));
        assert_eq!(placed, (Time::from_nanos(batch * MS), interval), "stamped at {at} ms");
    }
}

#[test]
fn the_tracker_completes_partitions_as_the_close_groups_them() {
    // Pushes (stamp in ms, records) and, after each, the partition it completes:
    // (batch in ms, index in the batch, blocks).
    type Completes = Option<(u64, usize, Vec<u64>)>;
    let pushes: [(u64, usize, Completes); 9] = [
        (1_010, 4, None),
        (1_100, 4, None),
        // A later block interval: the first partition is complete.
        (1_250, 4, Some((1_500, 0, vec![0, 1]))),
        // Would pass 10 records: the partition is complete, the push starts the next one.
        (1_260, 7, Some((1_500, 1, vec![2]))),
        (1_270, 3, None),
        // A larger push than the bound makes a partition alone.
        (1_280, 12, Some((1_500, 2, vec![3, 4]))),
        // The next batch: its first partition is index 0 again.
        (1_600, 1, Some((1_500, 3, vec![5]))),
        (1_650, 1, None),
        (2_100, 1, Some((2_000, 0, vec![6, 7]))),
    ];
    let mut tracker = Tracker::default();
    for (seq, (at, records, expected)) in pushes.into_iter().enumerate() {
        let done = tracker.stamped(&shape(10), Time::from_nanos(at * MS), block(seq as u64), records);
        let expected =
            expected.map(|(b, i, blocks)| (Time::from_nanos(b * MS), i, blocks.into_iter().map(block).collect()));
        assert_eq!(done, expected, "push {seq} stamped at {at} ms");
    }
}

fn key(index: usize) -> AheadKey {
    AheadKey { stream: StreamId(3), index, blocks: vec![block(index as u64)] }
}

#[test]
fn a_partition_computed_ahead_is_read_once_and_only_while_its_batch_is_not_generated() {
    let memo = AheadMemo::default();
    let batch = Time::from_nanos(1_500 * MS);
    assert!(memo.begin(&key(0), batch));
    assert!(!memo.begin(&key(0), batch), "claimed twice");
    assert!(memo.take(&key(0)).is_none(), "read while it is computed");
    memo.finish(&key(0), Some((Arc::new(vec![1u32, 2]), 8)));
    assert!(memo.begin(&key(1), batch));
    memo.finish(&key(1), None);
    memo.generating(batch);
    assert!(!memo.begin(&key(2), batch), "claimed after its batch was generated");
    let value = memo.take(&key(0)).expect("computed ahead");
    assert_eq!(*value.downcast::<Vec<u32>>().expect("its type"), vec![1, 2]);
    assert!(memo.take(&key(0)).is_none(), "read twice");
    assert!(memo.take(&key(1)).is_none(), "a failed computation is not read");
    assert_eq!(memo.counts(), PartitionsAhead { computed: 1, read: 1 });
}

#[test]
fn generating_a_batch_drops_what_earlier_batches_left_and_waits_for_its_own() {
    let memo = Arc::new(AheadMemo::default());
    let (first, second) = (Time::from_nanos(1_500 * MS), Time::from_nanos(2_000 * MS));
    assert!(memo.begin(&key(0), first));
    memo.finish(&key(0), Some((Arc::new(0u8), 1)));
    assert!(memo.begin(&key(1), second));
    let finisher = {
        let memo = Arc::clone(&memo);
        crate::runtime::spawn("finisher", move || memo.finish(&key(1), Some((Arc::new(1u8), 1)))).expect("a thread")
    };
    // Returns only once the claimed partition of its batch has ended.
    memo.generating(second);
    finisher.join().expect("the finishing thread");
    assert!(memo.take(&key(0)).is_none(), "left by an earlier batch");
    assert!(memo.take(&key(1)).is_some());
}

#[test]
fn a_stopped_memo_keeps_nothing_and_waits_for_nothing() {
    let memo = AheadMemo::default();
    let batch = Time::from_nanos(1_500 * MS);
    assert!(memo.begin(&key(0), batch));
    memo.stop();
    memo.generating(batch); // would wait for key 0 if the memo were running
    memo.finish(&key(0), Some((Arc::new(0u8), 1)));
    assert!(memo.take(&key(0)).is_none());
    assert!(!memo.begin(&key(1), Time::from_nanos(9_000 * MS)));
}

#[test]
fn results_past_the_byte_bound_are_dropped_and_computed_at_the_close() {
    let memo = AheadMemo::default();
    let batch = Time::from_nanos(1_500 * MS);
    assert!(memo.begin(&key(0), batch));
    memo.finish(&key(0), Some((Arc::new(0u8), super::BYTES_MAX - 10)));
    assert!(memo.begin(&key(1), batch));
    memo.finish(&key(1), Some((Arc::new(1u8), 11)));
    assert!(memo.take(&key(1)).is_none(), "kept past the bound");
    assert!(memo.take(&key(0)).is_some());
    // Reading the first made room.
    assert!(memo.begin(&key(2), batch));
    memo.finish(&key(2), Some((Arc::new(2u8), 11)));
    assert!(memo.take(&key(2)).is_some());
    assert_eq!(memo.counts(), PartitionsAhead { computed: 2, read: 2 });
}
