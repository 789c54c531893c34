//! `KafkaSource` against a Kafka-protocol broker on localhost sockets: librdkafka's mock
//! cluster (`rdkafka::mocking::MockCluster`), in this test process, fed by a real producer.
//! Batches take each partition's new records; the rate bound holds; offsets are committed to
//! the group after each batch; a broker that goes down gives reported empty batches and
//! nothing lost; an unknown or vanished topic stops the context with a typed error. And the
//! program killed with SIGKILL (a child process: this test binary again, in child mode) and
//! restarted from its checkpoints on `LocalFs`, again and again, while records keep coming:
//! every record lands in exactly one batch of a batch-keyed sink.
//!
//! Run with `cargo test -p dstream-storage --features kafka --test kafka`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstream::{Error, ManualClock, SplitMix64, StepCluster, Storage, StreamingContext, Time};
use dstream_storage::{KafkaConfig, KafkaError, KafkaRecord, KafkaSource, LocalFs};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TOPIC: &str = "lines";
const PARTITIONS: i32 = 3;

/// A mock cluster of one broker with the topic, and a producer to it.
fn cluster() -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, BaseProducer) {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().unwrap();
    (mock, producer)
}

/// Produces records `from..to` ("record-N"), record N to partition N % 3, and waits for them.
fn produce(producer: &BaseProducer, from: u64, to: u64) {
    for n in from..to {
        let payload = format!("record-{n}");
        let partition = (n % PARTITIONS as u64) as i32;
        producer.send(BaseRecord::<(), _>::to(TOPIC).payload(&payload).partition(partition)).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn config(mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>, group: &str) -> KafkaConfig {
    KafkaConfig::new(mock.bootstrap_servers(), group)
        .topic(TOPIC)
        .request_timeout(Duration::from_secs(2))
        .set("reconnect.backoff.max.ms", "200")
}

/// Each batch's records as `record-N` numbers, partition by partition.
type Batches = Arc<Mutex<Vec<Vec<Vec<u64>>>>>;

fn number(record: &KafkaRecord) -> u64 {
    record.payload_str().and_then(|s| s.strip_prefix("record-")).unwrap().parse().unwrap()
}

fn stepped(config: KafkaConfig, flow: dstream::FlowControl) -> (StepCluster, StreamingContext, Batches) {
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock).unwrap();
    let batches = Batches::default();
    let sink = Arc::clone(&batches);
    ssc.direct_stream_with(KafkaSource::new(config), flow)
        .foreach_rdd(move |rdd, _| {
            let parts = rdd.glom().collect()?;
            sink.lock().unwrap().push(parts.iter().map(|p| p.iter().map(number).collect()).collect());
            Ok(())
        })
        .unwrap();
    (cluster, ssc, batches)
}

#[test]
fn batches_take_each_partitions_new_records_and_commit_their_offsets() {
    let (mock, producer) = cluster();
    let (_cluster, ssc, batches) = stepped(config(&mock, "g1"), dstream::FlowControl::default());
    produce(&producer, 0, 30);
    assert_eq!(ssc.step().unwrap().records, 30);
    assert_eq!(ssc.step().unwrap().records, 0);
    produce(&producer, 30, 36);
    assert_eq!(ssc.step().unwrap().records, 6);
    let got = batches.lock().unwrap().clone();
    // One dataset partition per Kafka partition, each in offset order.
    let first: Vec<Vec<u64>> = (0..3).map(|p| (0..30).filter(|n| n % 3 == p).collect()).collect();
    assert_eq!(got[0], first);
    assert_eq!(got[1], vec![Vec::<u64>::new(); 3]);
    assert_eq!(got[2], vec![vec![30, 33], vec![31, 34], vec![32, 35]]);

    // The offsets of the completed batches are the group's (committed asynchronously: a
    // commit is done once the next poll served it, which the next batch's read does).
    ssc.step().unwrap();
    let probe: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).set("group.id", "g1").create().unwrap();
    let mut ask = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        ask.add_partition(TOPIC, p);
    }
    let committed = probe.committed_offsets(ask, Duration::from_secs(10)).unwrap();
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(offsets, vec![Offset::Offset(12); 3]);
}

#[test]
fn the_rate_per_partition_bounds_each_batch() {
    let (mock, producer) = cluster();
    let (_cluster, ssc, batches) =
        stepped(config(&mock, "g2").max_rate_per_partition(4), dstream::FlowControl::default());
    produce(&producer, 0, 30);
    let sizes: Vec<u64> = (0..4).map(|_| ssc.step().unwrap().records).collect();
    assert_eq!(sizes, vec![12, 12, 6, 0]);
    let all: Vec<u64> = batches.lock().unwrap().iter().flatten().flatten().copied().collect();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..30).collect::<Vec<_>>());
}

#[test]
fn a_broker_down_gives_reported_empty_batches_and_loses_nothing() {
    let (mock, producer) = cluster();
    let (_cluster, ssc, batches) = stepped(config(&mock, "g3"), dstream::FlowControl::default());
    produce(&producer, 0, 9);
    // Down before the first batch: the source has never reached it.
    mock.broker_down(1).unwrap();
    assert_eq!(ssc.step().unwrap().records, 0);
    assert_eq!(ssc.receiver_errors().len(), 1, "{:?}", ssc.receiver_errors());
    mock.broker_up(1).unwrap();
    let mut waited = 0;
    while batches.lock().unwrap().iter().flatten().flatten().count() < 9 {
        ssc.step().unwrap();
        waited += 1;
        assert!(waited <= 30, "the records were not read within 30 batches of the broker's start");
    }
    produce(&producer, 9, 18);
    mock.broker_down(1).unwrap();
    assert_eq!(ssc.step().unwrap().records, 0);
    assert_eq!(ssc.step().unwrap().records, 0);
    let errors = ssc.receiver_errors();
    assert!(errors.len() >= 3, "each batch without the broker is reported: {errors:?}");
    mock.broker_up(1).unwrap();
    // The client reconnects with its backoff: batches until then are empty, and reported.
    let mut batches_after = 0;
    while batches.lock().unwrap().iter().flatten().flatten().count() < 18 {
        ssc.step().unwrap();
        batches_after += 1;
        assert!(batches_after <= 30, "the records were not read within 30 batches of the broker's return");
    }
    let all: Vec<u64> = batches.lock().unwrap().iter().flatten().flatten().copied().collect();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..18).collect::<Vec<_>>());
}

fn kafka_error(err: &Error) -> &KafkaError {
    let Error::SourceFailed { source, .. } = err else { panic!("not a source failure: {err}") };
    source.downcast_ref::<KafkaError>().unwrap_or_else(|| panic!("not a Kafka error: {err}"))
}

#[test]
fn an_unknown_topic_stops_the_context_with_a_typed_error() {
    let (mock, _producer) = cluster();
    let (_cluster, ssc, _) = stepped(config(&mock, "g4").topic("no-such-topic"), dstream::FlowControl::default());
    let err = ssc.step().unwrap_err();
    assert!(matches!(kafka_error(&err), KafkaError::UnknownTopic { topic, .. } if topic == "no-such-topic"), "{err}");
    assert!(err.to_string().contains("no-such-topic"), "{err}");
}

#[test]
fn a_topic_that_disappears_stops_the_context_after_the_last_batch_read() {
    let (mock, producer) = cluster();
    let (_cluster, ssc, batches) = stepped(config(&mock, "g5"), dstream::FlowControl::default());
    produce(&producer, 0, 6);
    assert_eq!(ssc.step().unwrap().records, 6);
    mock.topic_error(TOPIC, RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART).unwrap();
    let err = ssc.step().unwrap_err();
    assert!(matches!(kafka_error(&err), KafkaError::UnknownTopic { .. }), "{err}");
    assert_eq!(batches.lock().unwrap().len(), 1, "the batch read before is kept");
}

/// The child's environment: the brokers and the checkpoint root; set only in the child.
const CHILD_BROKERS: &str = "DSTREAM_KAFKA_CHILD_BROKERS";
const CHILD_ROOT: &str = "DSTREAM_KAFKA_CHILD_ROOT";
/// Runs of the child: all but the last killed.
const ROUNDS: u64 = 8;
/// How many batches a child runs before it exits by itself.
const CHILD_BATCHES: u64 = 40;

/// The child: the program on `LocalFs` checkpoints, batch after batch, each batch's records
/// written to `out/<batch>` (a batch run again must write the same records); prints each
/// batch completed.
#[test]
fn child_program() {
    let (Ok(brokers), Ok(root)) = (std::env::var(CHILD_BROKERS), std::env::var(CHILD_ROOT)) else { return };
    let store = LocalFs::new(&root).unwrap();
    let cluster = StepCluster::builder().workers(2).build();
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let checkpointing = dstream_storage::checkpointing(LocalFs::new(format!("{root}/checkpoints")).unwrap());
    let config = KafkaConfig::new(brokers, "restarts").topic(TOPIC).max_rate_per_partition(7);
    let (ssc, ()) =
        StreamingContext::get_or_create(cluster.context(), Duration::from_secs(1), clock, checkpointing, |ssc| {
            let records = ssc.direct_stream(KafkaSource::new(config));
            // A stateful stream too, so the checkpoints cut a lineage.
            records
                .map(|r| (r.partition, 1u64))
                .reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(3), Duration::from_secs(1))?
                .foreach_rdd(|_, _| Ok(()))?;
            records.foreach_rdd(move |rdd, time| {
                let mut lines: Vec<String> =
                    rdd.collect()?.iter().map(|r| format!("{} {} {}", r.partition, r.offset, number(r))).collect();
                lines.sort();
                let text = lines.join("\n");
                let name = format!("out/{:020}", time.as_nanos());
                if let Ok(before) = store.get(&name) {
                    assert_eq!(before, text.as_bytes(), "batch {time} ran again with other records");
                }
                store.put(&name, text.as_bytes()).map_err(|e| Error::BatchFailed(e.to_string()))?;
                Ok(())
            })?;
            Ok(())
        })
        .unwrap();
    for _ in 0..CHILD_BATCHES {
        let info = ssc.step().unwrap();
        println!("batch {} {}", info.time, info.records);
    }
}

#[test]
fn killed_and_restarted_every_record_is_in_exactly_one_batch() {
    let (mock, producer) = cluster();
    let dir = common::TempDir::new("kafka-restarts");
    let root = dir.path().to_str().unwrap().to_string();
    let mut rng = SplitMix64::new(0x6b61_666b);
    let mut produced = 0;
    let mut kills = 0;
    for round in 0..ROUNDS {
        produce(&producer, produced, produced + 40);
        produced += 40;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_program", "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_BROKERS, mock.bootstrap_servers())
            .env(CHILD_ROOT, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let last = round == ROUNDS - 1;
        let kill_after = 1 + rng.below(4) as u64;
        let mut seen = 0;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if !line.starts_with("batch ") {
                continue;
            }
            seen += 1;
            if !last && seen == kill_after {
                // In the middle of whatever the next batch is doing.
                child.kill().unwrap();
                kills += 1;
                break;
            }
            if seen == 2 {
                // Records arriving while the program runs.
                produce(&producer, produced, produced + 10);
                produced += 10;
            }
        }
        let status = child.wait().unwrap();
        assert!(!last || status.success(), "the last run exits by itself: {status}");
        drop(lines);
    }
    // Every produced record in exactly one batch's output.
    let store = LocalFs::new(&root).unwrap();
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let outputs = store.list("out/").unwrap();
    for name in &outputs {
        let text = String::from_utf8(store.get(name).unwrap()).unwrap();
        for line in text.lines() {
            let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            if let Some(other) = seen.insert(n, name.clone()) {
                panic!("record {n} is in {other} and in {name}");
            }
        }
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..produced).collect::<Vec<_>>());
    eprintln!("{produced} records in {} batches, over {kills} kills and restarts", outputs.len());
}
