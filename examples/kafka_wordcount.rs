//! Running word totals of the lines of a Kafka topic, read as a direct stream: each batch
//! takes every partition's new records, checkpointed so a restart goes on exactly after the
//! last batch. Needs the `kafka` feature.
//!
//! ```text
//! # against a broker of your own:
//! cargo run --release --features kafka --example kafka_wordcount -- --brokers localhost:9092 --topic lines
//! # or against an in-process mock broker (librdkafka's), fed by a producer thread:
//! cargo run --release --features kafka --example kafka_wordcount -- --mock --seconds 10
//! ```
//!
//! The checkpoints go to `--checkpoint-dir` (by default `dstream-kafka-wordcount` in the
//! temporary directory): run it again with the same directory (and the same broker: a mock
//! broker lives as long as its run) and it resumes. The offsets of every completed batch are
//! committed to the consumer group `--group`. `--max-rate-per-partition` bounds each batch.
//! A broker that is down is reported once per batch (empty batches); an unknown topic stops
//! the run with an error.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dstream::generator::RecordPool;
use dstream::{Context, Error, StreamingContext, SystemClock};
use dstream_examples::{main_with, run_until, ClusterArgs, Progress, Until};
use dstream_storage::{KafkaConfig, KafkaSource, LocalFs};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// Running word totals of a Kafka topic's lines.
#[derive(Debug, Parser)]
#[command(name = "kafka_wordcount")]
struct Args {
    /// The brokers (host:port, comma-separated)
    #[arg(long, required_unless_present = "mock", conflicts_with = "mock")]
    brokers: Option<String>,
    /// Start a mock broker in this process, with the topic, and produce lines to it
    #[arg(long)]
    mock: bool,
    /// The topic of the lines
    #[arg(long, default_value = "lines")]
    topic: String,
    /// The consumer group the offsets are committed to
    #[arg(long, default_value = "dstream-kafka-wordcount")]
    group: String,
    /// At most this many records per second of each partition
    #[arg(long, value_name = "N")]
    max_rate_per_partition: Option<u64>,
    /// With --mock: lines produced per second
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    rate: u64,
    /// Where the checkpoints live; a restart with the same directory resumes
    /// [default: dstream-kafka-wordcount in the temporary directory]
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// How long to run, in seconds (Ctrl-C stops earlier, gracefully)
    #[arg(long, value_name = "N", default_value_t = 10)]
    seconds: u64,
    /// The batch interval, in milliseconds (a restart must keep it)
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    batch_ms: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Produces lines of synthetic words to `topic` at `rate` per second until `stop`; counts them.
fn produce(brokers: String, topic: String, rate: u64, stop: Arc<AtomicBool>, produced: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let producer: BaseProducer = match ClientConfig::new().set("bootstrap.servers", &brokers).create() {
            Ok(p) => p,
            Err(e) => return eprintln!("kafka_wordcount: cannot create the producer: {e}"),
        };
        let pool = RecordPool::standard();
        let tick = Duration::from_millis(100);
        let per_tick = (rate / 10).max(1);
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            for _ in 0..per_tick {
                let line = pool.record(n, dstream::Time::ZERO).words().collect::<Vec<_>>().join(" ");
                if producer.send(BaseRecord::<(), _>::to(&topic).payload(&line)).is_ok() {
                    n += 1;
                }
            }
            let _ = producer.flush(Duration::from_secs(5));
            produced.store(n, Ordering::SeqCst);
            // Paces the producer: an example's load generator, not a wait for an event.
            std::thread::sleep(tick);
        }
    });
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Duration::from_millis(args.batch_ms);
    let dir = args.checkpoint_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("dstream-kafka-wordcount"));
    let resuming = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    let mock = if args.mock && !args.cluster.is_worker_process() {
        let mock = MockCluster::new(1)?;
        mock.create_topic(&args.topic, 4, 1)?;
        Some(mock)
    } else {
        None
    };
    let brokers = match (&mock, &args.brokers) {
        (Some(mock), _) => mock.bootstrap_servers(),
        (None, Some(brokers)) => brokers.clone(),
        // A worker process of --mock: it never reads (the driver does).
        (None, None) => String::new(),
    };
    let mut kafka = KafkaConfig::new(&brokers, &args.group).topic(&args.topic);
    if let Some(rate) = args.max_rate_per_partition {
        kafka = kafka.max_rate_per_partition(rate);
    }
    let checkpoints = dstream_storage::checkpointing(LocalFs::new(&dir)?);
    let progress = Progress::new(true);
    let words = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&words);
    let program = |ctx: &Context| {
        StreamingContext::get_or_create(ctx.clone(), batch, Arc::new(SystemClock::new()), checkpoints, |ssc| {
            ssc.add_listener(progress.clone());
            let lines = ssc.direct_stream(KafkaSource::new(kafka));
            let totals = lines
                .flat_map(|r| {
                    r.payload_str().unwrap_or_default().split_whitespace().map(str::to_owned).collect::<Vec<_>>()
                })
                .map(|w| (w, 1u64))
                .update_state_by_key(
                    |ones: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + ones.len() as u64),
                    4,
                )?;
            totals.map(|(_, n)| n).reduce(|a, b| a + b).foreach_rdd(move |rdd, _| {
                counted.store(rdd.collect()?.iter().sum(), Ordering::SeqCst);
                Ok(())
            })?;
            totals.print(5)?;
            Ok::<(), Error>(())
        })
    };
    let (_cluster, (ssc, ())) = args.cluster.launch(program)?;
    if args.cluster.is_worker_process() {
        let handle = ssc.start()?;
        return Ok(run_until(&handle, Until::Interrupted, None)?);
    }
    let (stop, produced) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    if mock.is_some() {
        produce(brokers.clone(), args.topic.clone(), args.rate, Arc::clone(&stop), Arc::clone(&produced));
    }
    let source = if mock.is_some() { format!("a mock broker at {brokers}") } else { brokers.clone() };
    if resuming {
        println!("kafka_wordcount: resuming from the checkpoints in {}", dir.display());
    } else {
        println!("kafka_wordcount: starting fresh, checkpointing to {}", dir.display());
    }
    println!("  reading topic {:?} from {source} every {} ms", args.topic, args.batch_ms);
    let handle = ssc.start()?;
    run_until(&handle, Until::seconds(Some(args.seconds)), None)?;
    stop.store(true, Ordering::SeqCst);
    progress.summary(batch);
    if mock.is_some() {
        println!("lines produced: {}", produced.load(Ordering::SeqCst));
    }
    println!("words counted: {}", words.load(Ordering::SeqCst));
    Ok(())
}

fn main() -> ExitCode {
    main_with(run)
}
