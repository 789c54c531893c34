//! Counts the words of a text file, or of a built-in sample text, on an in-process cluster and
//! prints the 20 most frequent words and the time taken.
//!
//! ```text
//! cargo run --release --example batch_wordcount -- [FILE] [--workers N] [--partitions N]
//! cargo run --release --example batch_wordcount -- --help
//! ```
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // An example program reports on stdout.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use dstream::{Context, Rdd, SplitMix64};
use dstream_inproc::LocalCluster;
use dstream_storage::TextFile;

/// Counts the words of a text file (or of a built-in sample text) on an in-process cluster.
#[derive(Debug, Parser)]
#[command(name = "batch_wordcount")]
struct Args {
    /// The text file to count [default: a built-in sample of 200,000 lines]
    file: Option<String>,
    /// Workers of the in-process cluster [default: one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,
    /// Partitions of the input
    #[arg(long, value_name = "N", default_value_t = 8)]
    partitions: usize,
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

fn lines(ctx: &Context, args: &Args) -> Result<Rdd<String>, Box<dyn std::error::Error>> {
    Ok(match &args.file {
        Some(path) => ctx.from_source(TextFile::open(path, args.partitions)?)?,
        None => ctx.parallelize(sample_lines(), args.partitions)?,
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = LocalCluster::builder();
    if let Some(w) = args.workers {
        builder = builder.workers(w);
    }
    let cluster = builder.build()?;
    let ctx = cluster.context();
    let lines = lines(&ctx, args)?;

    let started = Instant::now();
    let counts = lines
        .flat_map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|word| (word, 1u64))
        .reduce_by_key(|a, b| a + b)
        .persist();
    let distinct = counts.count()?;
    let top = counts.map(|(word, n)| ((n, word), ())).sort_by_key(false, 1)?.take(20)?;
    let elapsed = started.elapsed();

    let total: u64 = counts.map(|(_, n)| n).fold(0, |a, b| a + b)?;
    println!("{total} words, {distinct} distinct; the 20 most frequent:");
    for ((n, word), ()) in top {
        println!("{n:>10}  {word}");
    }
    println!("counted in {:.1} ms", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

fn main() -> ExitCode {
    dstream_examples::main_with(|args: Args| run(&args))
}
