//! Reading one batch: the partitions of every topic, each partition's range (from where the
//! stream is to the broker's latest offset, within the bounds), then the records of the
//! ranges.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dstream::{DirectBatch, DirectContext, DirectRead};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{Commits, KafkaConfig, KafkaError, KafkaOffsets, KafkaRecord, StartFrom};

/// How long one poll waits before the read checks the consumer's positions (offsets that are
/// not records are never delivered, only stepped over).
const POLL_SLICE: Duration = Duration::from_millis(100);

/// One partition's range in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Range {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
}

/// Why the batch reads nothing: a failure the source recovers from, reported.
struct Unavailable(String);

pub(super) fn read_batch(
    consumer: &BaseConsumer<Commits>,
    config: &KafkaConfig,
    read: &DirectRead,
    from: Option<&KafkaOffsets>,
    ctx: &DirectContext,
) -> Result<DirectBatch<KafkaRecord, KafkaOffsets>, KafkaError> {
    let ranges = match ranges(consumer, config, read, from) {
        Ok(ranges) => ranges,
        Err(Ok(Unavailable(message))) => {
            ctx.report_error(&message);
            // Callbacks (failed commits) are served by polls.
            let _ = consumer.poll(Duration::ZERO);
            return Ok(DirectBatch { partitions: Vec::new(), position: from.cloned().unwrap_or_default() });
        }
        Err(Err(fatal)) => return Err(fatal),
    };
    let (partitions, ends) = fetch(consumer, config, &ranges, ctx);
    let mut position = from.cloned().unwrap_or_default();
    for (range, end) in ranges.iter().zip(ends) {
        position.set(&range.topic, range.partition, end);
    }
    Ok(DirectBatch { partitions, position })
}

/// The batch's range of every partition, in (topic, partition) order.
fn ranges(
    consumer: &BaseConsumer<Commits>,
    config: &KafkaConfig,
    read: &DirectRead,
    from: Option<&KafkaOffsets>,
) -> Result<Vec<Range>, Result<Unavailable, KafkaError>> {
    let timeout = config.request_timeout;
    let mut partitions: Vec<(String, i32)> = Vec::new();
    for topic in &config.topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| Ok(Unavailable(format!("Kafka metadata of topic {topic:?}: {e}"))))?;
        let unknown = |reason: String| Err(KafkaError::UnknownTopic { topic: topic.clone(), reason });
        let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(unknown("the brokers do not describe it".into()));
        };
        match described.error() {
            None => {}
            Some(
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                | RDKafkaRespErr::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            ) => {
                return Err(unknown("unknown topic or partition".into()));
            }
            Some(other) => return Err(Ok(Unavailable(format!("Kafka metadata of topic {topic:?}: {other:?}")))),
        }
        if described.partitions().is_empty() {
            return Err(unknown("it has no partitions".into()));
        }
        partitions.extend(described.partitions().iter().map(|p| (topic.clone(), p.id())));
    }
    partitions.sort();

    // The group's committed offsets, for partitions no batch has read yet.
    let mut ask = TopicPartitionList::new();
    for (topic, partition) in &partitions {
        if from.and_then(|f| f.get(topic, *partition)).is_none() {
            ask.add_partition(topic, *partition);
        }
    }
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    if ask.count() > 0 {
        let list = consumer
            .committed_offsets(ask, timeout)
            .map_err(|e| Ok(Unavailable(format!("the committed offsets of group {:?}: {e}", config.group_id))))?;
        for elem in list.elements() {
            if let Offset::Offset(o) = elem.offset() {
                committed.insert((elem.topic().to_owned(), elem.partition()), o);
            }
        }
    }

    let cap =
        config.max_rate_per_partition.map(|rate| ((rate as f64 * read.interval.as_secs_f64()).ceil() as i64).max(1));
    let mut ranges = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, timeout)
            .map_err(|e| Ok(Unavailable(format!("the offsets of {topic}/{partition}: {e}"))))?;
        let known =
            from.and_then(|f| f.get(&topic, partition)).or_else(|| committed.get(&(topic.clone(), partition)).copied());
        let start = match (known, config.start) {
            (Some(at), _) => at,
            (None, StartFrom::Earliest) => low,
            (None, StartFrom::Latest) => high,
        };
        if start < low {
            return Err(Err(KafkaError::OffsetsLost { topic, partition, from: start, earliest: low }));
        }
        if start > high {
            return Err(Err(KafkaError::OffsetsAhead { topic, partition, from: start, latest: high }));
        }
        let end = cap.map_or(high, |cap| high.min(start.saturating_add(cap)));
        ranges.push(Range { topic, partition, start, end });
    }
    if let Some(max) = read.records_max {
        bound_total(&mut ranges, max);
    }
    Ok(ranges)
}

/// Shortens the ranges to at most `max` records in all, each partition's share in
/// proportion to its lag (Spark's backpressure split).
fn bound_total(ranges: &mut [Range], max: u64) {
    let lags: Vec<u64> = ranges.iter().map(|r| (r.end - r.start) as u64).collect();
    let total: u64 = lags.iter().sum();
    if total <= max {
        return;
    }
    let mut given = 0;
    for (range, lag) in ranges.iter_mut().zip(&lags) {
        let share = (u128::from(*lag) * u128::from(max) / u128::from(total)) as u64;
        range.end = range.start + share as i64;
        given += share;
    }
    // What the rounding down left, one record each, in partition order.
    for (range, lag) in ranges.iter_mut().zip(&lags) {
        if given == max {
            break;
        }
        if ((range.end - range.start) as u64) < *lag {
            range.end += 1;
            given += 1;
        }
    }
    debug_assert!(ranges.iter().map(|r| (r.end - r.start) as u64).sum::<u64>() <= max);
}

/// Reads the records of the ranges, within the read timeout: one vector per range, and where
/// each range's reading ended.
fn fetch(
    consumer: &BaseConsumer<Commits>,
    config: &KafkaConfig,
    ranges: &[Range],
    ctx: &DirectContext,
) -> (Vec<Vec<KafkaRecord>>, Vec<i64>) {
    let mut next: Vec<i64> = ranges.iter().map(|r| r.start).collect();
    let mut records: Vec<Vec<KafkaRecord>> = ranges.iter().map(|_| Vec::new()).collect();
    let index: BTreeMap<(&str, i32), usize> =
        ranges.iter().enumerate().map(|(i, r)| ((r.topic.as_str(), r.partition), i)).collect();
    let mut assignment = TopicPartitionList::new();
    for r in ranges.iter().filter(|r| r.end > r.start) {
        if let Err(e) = assignment.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.start)) {
            ctx.report_error(&format!("cannot read {}/{} from {}: {e}", r.topic, r.partition, r.start));
            return (records, next);
        }
    }
    if assignment.count() == 0 {
        let _ = consumer.poll(Duration::ZERO);
        return (records, next);
    }
    if let Err(e) = consumer.assign(&assignment) {
        ctx.report_error(&format!("cannot assign the batch's partitions: {e}"));
        return (records, next);
    }
    let deadline = Instant::now() + config.read_timeout;
    let mut reported = false;
    let done = |next: &[i64]| ranges.iter().zip(next).all(|(r, n)| *n >= r.end);
    while !done(&next) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left.min(POLL_SLICE)) {
            Some(Ok(message)) => {
                let Some(&i) = index.get(&(message.topic(), message.partition())) else { continue };
                let offset = message.offset();
                // Anything else is from before the assignment, or past the range.
                if offset >= next[i] && offset < ranges[i].end {
                    records[i].push(KafkaRecord {
                        topic: ranges[i].topic.clone(),
                        partition: ranges[i].partition,
                        offset,
                        timestamp_ms: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    });
                    next[i] = offset + 1;
                }
            }
            Some(Err(e)) => {
                if !reported {
                    ctx.report_error(&format!("reading the batch's records: {e}"));
                    reported = true;
                }
            }
            None => {
                // Offsets that are not records (transaction markers) are never delivered: the
                // consumer's position steps over them.
                if let Ok(positions) = consumer.position() {
                    for elem in positions.elements() {
                        if let (Some(&i), Offset::Offset(at)) =
                            (index.get(&(elem.topic(), elem.partition())), elem.offset())
                        {
                            if at > next[i] && next[i] > ranges[i].start.saturating_sub(1) {
                                next[i] = at.min(ranges[i].end);
                            }
                        }
                    }
                }
            }
        }
    }
    // No fetch waits at the brokers between batches: the next batch's offset requests would
    // queue behind it (a broker answers a connection's requests in order).
    if let Err(e) = consumer.unassign() {
        ctx.report_error(&format!("cannot release the batch's partitions: {e}"));
    }
    for (r, n) in ranges.iter().zip(&next) {
        if *n < r.end {
            ctx.report_error(&format!(
                "read {} of the {} records of {}/{} within {:?}; the rest go to the next batch",
                n - r.start,
                r.end - r.start,
                r.topic,
                r.partition,
                config.read_timeout
            ));
        }
    }
    (records, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(partition: i32, start: i64, end: i64) -> Range {
        Range { topic: "t".into(), partition, start, end }
    }

    #[test]
    fn the_total_bound_is_split_by_lag_and_never_passed() {
        let table: &[(&[(i64, i64)], u64, &[i64])] = &[
            (&[(0, 10), (0, 10)], 100, &[10, 10]),
            (&[(0, 10), (0, 10)], 10, &[5, 5]),
            (&[(0, 30), (5, 15)], 8, &[6, 7]),
            (&[(0, 1), (0, 1), (0, 1)], 2, &[1, 1, 0]),
            (&[(0, 100), (0, 0)], 1, &[1, 0]),
            (&[(0, 7)], 0, &[0]),
        ];
        for (spans, max, ends) in table {
            let mut ranges: Vec<Range> = spans.iter().enumerate().map(|(i, (s, e))| range(i as i32, *s, *e)).collect();
            bound_total(&mut ranges, *max);
            let got: Vec<i64> = ranges.iter().map(|r| r.end).collect();
            assert_eq!(&got, ends, "{spans:?} within {max}");
        }
    }
}
