//! [`KafkaSource`]: Kafka topics as a direct stream (`StreamingContext::direct_stream`), the
//! way Spark's direct Kafka stream reads them: at each batch's close the driver asks the
//! brokers for every partition's latest offset, and the batch takes the range from where the
//! previous batch ended to there (bounded by [`KafkaConfig::max_rate_per_partition`] and the
//! stream's backpressure), one dataset partition per Kafka partition.
//!
//! With checkpoints the ranges' ends are logged with each batch's records, so a restart reads
//! exactly what no batch took: every record in exactly one batch. The offsets of each
//! completed batch are committed to the consumer group too (asynchronously; a failed commit
//! is reported at the next batch): they are where a program without checkpoints, or one
//! started afresh, begins (at least once), and what lag monitors read.
//!
//! - A broker that is down (or slow) gives empty batches, each reported through
//!   `on_receiver_error`; the batch after it is back reads on from where the last one ended.
//! - A topic that does not exist, or that disappears, stops the context with
//!   [`KafkaError::UnknownTopic`]. Records deleted before they were read (retention) stop it
//!   with [`KafkaError::OffsetsLost`]; a partition whose offsets went back (a topic deleted
//!   and made again) with [`KafkaError::OffsetsAhead`]. Nothing is skipped silently.
//! - Offsets that are not records (transaction markers, compacted records) are stepped over.

mod read;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{DirectBatch, DirectContext, DirectRead, DirectSource, Time};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// One Kafka record, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp, milliseconds since the Unix epoch, if it has one.
    pub timestamp_ms: Option<i64>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Option<Vec<u8>>,
}

impl KafkaRecord {
    /// The value as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        self.payload.as_deref().and_then(|p| std::str::from_utf8(p).ok())
    }
}

/// Where a batch ended: the next offset of each partition, by topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaOffsets(pub BTreeMap<String, BTreeMap<i32, i64>>);

impl KafkaOffsets {
    /// The next offset of `topic`'s `partition`, if known.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic).and_then(|p| p.get(&partition)).copied()
    }

    fn set(&mut self, topic: &str, partition: i32, offset: i64) {
        self.0.entry(topic.to_owned()).or_default().insert(partition, offset);
    }
}

/// Where a partition without a position starts: neither a batch nor the group's committed
/// offsets say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest record the broker still has.
    Earliest,
    /// The records produced from now on.
    Latest,
}

/// What a [`KafkaSource`] reads and how.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream_storage::{KafkaConfig, StartFrom};
///
/// let config = KafkaConfig::new("localhost:9092", "wordcount")
///     .topic("lines")
///     .start_from(StartFrom::Earliest)
///     .max_rate_per_partition(10_000)
///     .set("fetch.max.bytes", "1048576");
/// assert_eq!(config.topics(), ["lines"]);
/// ```
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    brokers: String,
    group_id: String,
    topics: Vec<String>,
    start: StartFrom,
    max_rate_per_partition: Option<u64>,
    request_timeout: Duration,
    read_timeout: Duration,
    properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Reads from the brokers `brokers` (`host:port`, comma-separated) as consumer group
    /// `group_id` (where offsets are committed); no topic yet. Partitions without a position
    /// start from the earliest record; requests wait 5 s at most, a batch's read 10 s.
    pub fn new(brokers: impl Into<String>, group_id: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            group_id: group_id.into(),
            topics: Vec::new(),
            start: StartFrom::Earliest,
            max_rate_per_partition: None,
            request_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            properties: BTreeMap::new(),
        }
    }

    /// Adds a topic to read.
    pub fn topic(mut self, topic: impl Into<String>) -> KafkaConfig {
        let topic = topic.into();
        if !self.topics.contains(&topic) {
            self.topics.push(topic);
        }
        self
    }

    /// The topics, in the order added.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Where partitions without a position start.
    pub fn start_from(mut self, start: StartFrom) -> KafkaConfig {
        self.start = start;
        self
    }

    /// At most `records_per_sec` records per second of each partition: a batch takes at most
    /// that times the batch interval from each (Spark's `maxRatePerPartition`).
    pub fn max_rate_per_partition(mut self, records_per_sec: u64) -> KafkaConfig {
        self.max_rate_per_partition = Some(records_per_sec.max(1));
        self
    }

    /// The most a metadata, offsets or commit request waits.
    pub fn request_timeout(mut self, timeout: Duration) -> KafkaConfig {
        self.request_timeout = timeout;
        self
    }

    /// The most a batch waits for its records; a batch that gets fewer in time ends where its
    /// records did (the rest go to the next batch) and the shortfall is reported.
    pub fn read_timeout(mut self, timeout: Duration) -> KafkaConfig {
        self.read_timeout = timeout;
        self
    }

    /// Sets a librdkafka consumer property (security, fetch sizes); the source's own
    /// (`group.id`, `bootstrap.servers`, `enable.auto.commit`, `enable.auto.offset.store`)
    /// cannot be changed.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> KafkaConfig {
        self.properties.insert(key.into(), value.into());
        self
    }
}

/// Why a [`KafkaSource`] stopped the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The configuration has no topic.
    #[error("the Kafka source has no topic to read")]
    NoTopic,
    /// The consumer could not be made (a bad property).
    #[error("cannot create the Kafka consumer: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic does not exist (or no longer does).
    #[error("Kafka topic {topic:?} does not exist ({reason})")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// What the broker said.
        reason: String,
    },
    /// Records the stream had not read yet were deleted (retention): they are gone.
    #[error("records {from}..{earliest} of {topic}/{partition} were deleted before they were read")]
    OffsetsLost {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where the stream was.
        from: i64,
        /// The oldest offset the broker has.
        earliest: i64,
    },
    /// A partition ends before where the stream was (the topic was deleted and made again).
    #[error("{topic}/{partition} ends at offset {latest}, before the stream's position {from}")]
    OffsetsAhead {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where the stream was.
        from: i64,
        /// The partition's end.
        latest: i64,
    },
}

/// Kafka topics as a direct stream; see the [module](self) documentation.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dstream::{StepCluster, StreamingContext, SystemClock};
/// use dstream_storage::{KafkaConfig, KafkaSource};
///
/// let cluster = StepCluster::builder().build();
/// let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(SystemClock::new()))?;
/// let records = ssc.direct_stream(KafkaSource::new(KafkaConfig::new("localhost:9092", "counter").topic("events")));
/// records.count().print(1)?;
/// # Ok::<(), dstream::Error>(())
/// ```
pub struct KafkaSource {
    config: KafkaConfig,
    /// Made at the first read: worker processes, which build the program too, never connect.
    consumer: Option<BaseConsumer<Commits>>,
    /// What the last commits reported, until the next batch reports it.
    commit_errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The consumer's context: keeps the failed commits.
struct Commits(Arc<Mutex<Vec<String>>>);

impl ClientContext for Commits {}

impl ConsumerContext for Commits {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let mut errors = self.0.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: the next batch reports them; a burst keeps the first few.
            if errors.len() < 8 {
                errors.push(format!("committing {} partitions' offsets failed: {e}", offsets.count()));
            }
        }
    }
}

impl KafkaSource {
    /// A source reading `config`'s topics. Nothing connects until the first batch.
    pub fn new(config: KafkaConfig) -> KafkaSource {
        KafkaSource { config, consumer: None, commit_errors: Arc::default() }
    }

    fn consumer(&mut self) -> Result<&BaseConsumer<Commits>, KafkaError> {
        if self.consumer.is_none() {
            if self.config.topics.is_empty() {
                return Err(KafkaError::NoTopic);
            }
            let mut client = ClientConfig::new();
            // A batch reads what is there when it closes: a long poll at the broker would only
            // hold up the requests behind it (the next batch's offsets).
            client.set("fetch.wait.max.ms", "50");
            for (key, value) in &self.config.properties {
                client.set(key, value);
            }
            client
                .set("bootstrap.servers", &self.config.brokers)
                .set("group.id", &self.config.group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false");
            let consumer = client.create_with_context(Commits(Arc::clone(&self.commit_errors)))?;
            self.consumer = Some(consumer);
        }
        // Set just above when it was not.
        self.consumer.as_ref().ok_or(KafkaError::NoTopic)
    }
}

impl DirectSource for KafkaSource {
    type Record = KafkaRecord;
    type Position = KafkaOffsets;
    type Error = KafkaError;

    fn read_batch(
        &mut self,
        read: &DirectRead,
        from: Option<&KafkaOffsets>,
        ctx: &DirectContext,
    ) -> Result<DirectBatch<KafkaRecord, KafkaOffsets>, KafkaError> {
        let errors = std::mem::take(&mut *self.commit_errors.lock().unwrap_or_else(|p| p.into_inner()));
        errors.iter().for_each(|e| ctx.report_error(e));
        let config = self.config.clone();
        let consumer = self.consumer()?;
        read::read_batch(consumer, &config, read, from, ctx)
    }

    fn batch_completed(&mut self, _time: Time, position: &KafkaOffsets, ctx: &DirectContext) {
        let Some(consumer) = &self.consumer else { return };
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in &position.0 {
            for (partition, offset) in partitions {
                if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                    ctx.report_error(&format!("cannot commit {topic}/{partition} at {offset}: {e}"));
                }
            }
        }
        if list.count() > 0 {
            if let Err(e) = consumer.commit(&list, CommitMode::Async) {
                ctx.report_error(&format!("committing the offsets of a completed batch failed: {e}"));
            }
        }
    }
}
