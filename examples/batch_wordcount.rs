//! Counts the words of a text file, or of a built-in sample text, on an in-process cluster (or
//! with `--cluster local:N` on worker processes over TCP) and prints the 20 most frequent words
//! and the time taken.
//!
//! ```text
//! cargo run --release --example batch_wordcount -- [FILE] [--workers N] [--partitions N]
//! cargo run --release --example batch_wordcount -- --cluster local:3   # 3 worker processes
//! cargo run --release --example batch_wordcount -- --help
//! ```
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use dstream::{Context, Error, Rdd, SplitMix64};
use dstream_examples::ClusterArgs;
use dstream_storage::TextFile;

/// Counts the words of a text file (or of a built-in sample text), in-process or over TCP.
#[derive(Debug, Parser)]
#[command(name = "batch_wordcount")]
struct Args {
    /// The text file to count [default: a built-in sample of 200,000 lines]
    file: Option<String>,
    /// Partitions of the input
    #[arg(long, value_name = "N", default_value_t = 8)]
    partitions: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// A deterministic sample text: 200,000 lines of words drawn with a skewed (roughly Zipf)
/// distribution from a 5,000-word vocabulary.
fn sample_lines() -> Vec<String> {
    let mut rng = SplitMix64::new(42);
    let vocabulary: Vec<String> = (0..5_000)
        .map(|_| {
            let len = 3 + rng.below(8);
            (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect()
        })
        .collect();
    (0..200_000)
        .map(|_| {
            let words = 4 + rng.below(12);
            let mut line = String::new();
            for i in 0..words {
                // The product of two uniform draws skews towards small ranks.
                let rank = rng.below(vocabulary.len()) * rng.below(vocabulary.len()) / vocabulary.len();
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(&vocabulary[rank]);
            }
            line
        })
        .collect()
}

/// The datasets of the count, built in every process of the cluster.
struct Program {
    counts: Rdd<(String, u64)>,
    /// Each partition's 20 most frequent words.
    tops: Rdd<(u64, String)>,
    /// Each partition's number of words (built-in actions only, such as `collect`, run on
    /// worker processes: a `fold` with a closure would not).
    totals: Rdd<u64>,
}

/// The `k` largest `(count, word)` pairs, largest first (ties by the word, last first).
fn largest(k: usize, mut pairs: Vec<(u64, String)>) -> Vec<(u64, String)> {
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    pairs.truncate(k);
    pairs
}

fn program(ctx: &Context, file: Option<TextFile>, partitions: usize) -> Result<Program, Error> {
    let lines = match file {
        Some(file) => ctx.from_source(file)?,
        None => ctx.parallelize(sample_lines(), partitions)?,
    };
    let counts = lines
        .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|word| (word, 1u64))
        .reduce_by_key(|a, b| a + b)
        .persist();
    let tops = counts.map_partitions_ref(|_, part| {
        let mut refs: Vec<(u64, &String)> = part.iter().map(|(w, n)| (*n, w)).collect();
        refs.sort_unstable_by(|a, b| b.cmp(a));
        refs.into_iter().take(20).map(|(n, w)| (n, w.clone())).collect::<Vec<_>>()
    });
    let totals = counts.map_partitions_ref(|_, part| [part.iter().map(|(_, n)| n).sum::<u64>()]);
    Ok(Program { counts, tops, totals })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let file = args.file.as_deref().map(|path| TextFile::open(path, args.partitions)).transpose()?;
    // Every process of the cluster builds the datasets (`--cluster`); the jobs run below, in
    // the driver.
    let (_cluster, program) = args.cluster.launch(|ctx| program(ctx, file, args.partitions))?;

    let started = Instant::now();
    let distinct = program.counts.count()?;
    // Each partition's top 20 on the workers, merged here.
    let top = largest(20, program.tops.collect()?);
    let elapsed = started.elapsed();

    let total: u64 = program.totals.collect()?.into_iter().sum();
    println!("{total} words, {distinct} distinct; the 20 most frequent:");
    for (n, word) in top {
        println!("{n:>10}  {word}");
    }
    println!("counted in {:.1} ms", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

fn main() -> ExitCode {
    dstream_examples::main_with(|args: Args| run(&args))
}
