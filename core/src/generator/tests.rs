//! The generator's tests: the pool's bytes and distribution, the codec, the paced receiver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::*;
use crate::harness::StepCluster;
use crate::stream::StreamingContext;
use crate::time::{ManualClock, Time};

fn standard_words() -> &'static [Box<str>] {
    static WORDS: OnceLock<Vec<Box<str>>> = OnceLock::new();
    WORDS.get_or_init(|| Generator::new(SEED).vocabulary().to_vec())
}

#[test]
fn records_are_exactly_100_ascii_bytes_of_words_and_padding() {
    let pool = RecordPool::standard();
    let vocabulary: std::collections::HashSet<&str> = standard_words().iter().map(|w| &**w).collect();
    for line in pool.lines().iter().take(10_000) {
        let text = std::str::from_utf8(line).expect("ascii");
        assert_eq!(text.len(), RECORD_BYTES);
        assert!(!text.starts_with(' '), "a record starts with a word: {text:?}");
        let words = text.trim_end();
        assert!(!words.contains("  "), "single spaces between words: {text:?}");
        assert!(words.split(' ').all(|w| vocabulary.contains(w)), "only vocabulary words: {text:?}");
        // Padding is shorter than the next word plus a space would need... unless the line
        // is full: a word never straddles, so at most 10 spaces of padding remain.
        assert!(RECORD_BYTES - words.len() <= *WORD_LENGTHS.end(), "{text:?}");
    }
}

#[test]
fn vocabulary_has_distinct_lowercase_words_of_3_to_10_letters() {
    let words = standard_words();
    assert_eq!(words.len(), VOCABULARY_WORDS);
    let distinct: std::collections::BTreeSet<&str> = words.iter().map(|w| &**w).collect();
    assert_eq!(distinct.len(), VOCABULARY_WORDS);
    for w in words {
        assert!(WORD_LENGTHS.contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
    }
}

#[test]
fn same_seed_same_records_other_seed_other_records() {
    let a = RecordPool::new(SEED, 500);
    assert_eq!(a, RecordPool::new(SEED, 500));
    assert_eq!(a.lines(), &RecordPool::standard().lines()[..500]);
    assert_ne!(a, RecordPool::new(SEED + 1, 500));
}

#[test]
fn the_standard_pool_does_not_change() {
    // The bytes every implementation measures: a change here changes the benchmark.
    let pool = RecordPool::standard();
    let first = std::str::from_utf8(pool.line(0)).expect("ascii").trim_end().to_owned();
    let hash = pool.lines().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, line| {
        line.iter().fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    });
    assert_eq!(
        (first.as_str(), hash),
        (
            "pdvffclhwx lxfolgh sgflps zwyhs vik zwyhs zwyhs fsriih afdaej krag amzt ecijexl fsswsps amzt qbv",
            9_697_521_272_647_539_098
        )
    );
}

/// Occurrences of each rank in the standard pool.
fn word_counts() -> Vec<u64> {
    let words = standard_words();
    let rank: std::collections::HashMap<&str, usize> = words.iter().enumerate().map(|(i, w)| (&**w, i)).collect();
    let mut counts = vec![0u64; words.len()];
    for line in RecordPool::standard().lines() {
        for w in std::str::from_utf8(line).expect("ascii").split_ascii_whitespace() {
            counts[rank[w]] += 1;
        }
    }
    counts
}

#[test]
fn words_follow_zipf_with_exponent_one() {
    let counts = word_counts();
    let total: u64 = counts.iter().sum();
    let harmonic: f64 = (1..=VOCABULARY_WORDS).map(|k| 1.0 / k as f64).sum();
    // Rank 1 has probability 1/H(n); rank k about 1/k of that.
    let expected_top = total as f64 / harmonic;
    assert!((counts[0] as f64 / expected_top - 1.0).abs() < 0.02, "top {} vs {expected_top}", counts[0]);
    let ratio = counts[0] as f64 / counts[1] as f64;
    assert!((ratio - 2.0).abs() < 0.1, "rank 1 / rank 2 = {ratio}");
    let mut sorted = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let median = sorted[sorted.len() / 2].max(1);
    assert!(sorted[0] > 10_000 * median, "most frequent {} vs median {median}", sorted[0]);
}

/// Records containing `word` as a whole word, and as a substring.
fn record_counts(word: &str) -> (usize, usize) {
    let pool = RecordPool::standard();
    fn text(l: &Line) -> &str {
        std::str::from_utf8(l).expect("ascii")
    }
    let whole = pool.lines().iter().filter(|l| text(l).split_ascii_whitespace().any(|w| w == word)).count();
    let sub = pool.lines().iter().filter(|l| text(l).contains(word)).count();
    (whole, sub)
}

#[test]
fn the_grep_pattern_matches_one_record_in_a_thousand() {
    let (whole, sub) = record_counts(GREP_PATTERN);
    assert_eq!((whole, sub), (POOL_RECORDS / 1000, POOL_RECORDS / 1000));
}

#[test]
fn the_grep_pattern_is_the_rule_s_choice() {
    // Recomputes GREP_PATTERN by its documented rule: among words whose whole-word and
    // substring record counts agree, the count nearest to 1 in 1,000, lowest rank first.
    let pool = RecordPool::standard();
    let words = standard_words();
    let rank: std::collections::HashMap<&str, usize> = words.iter().enumerate().map(|(i, w)| (&**w, i)).collect();
    let mut records_with = vec![0usize; words.len()];
    for line in pool.lines() {
        let mut ranks: Vec<usize> =
            std::str::from_utf8(line).expect("ascii").split_ascii_whitespace().map(|w| rank[w]).collect();
        ranks.sort_unstable();
        ranks.dedup();
        ranks.into_iter().for_each(|r| records_with[r] += 1);
    }
    let target = POOL_RECORDS / 1000;
    let mut candidates: Vec<(usize, usize)> =
        records_with.iter().enumerate().map(|(r, n)| (n.abs_diff(target), r)).collect();
    candidates.sort_unstable();
    let chosen = candidates
        .into_iter()
        .map(|(_, r)| &*words[r])
        .find(|w| {
            let (whole, sub) = record_counts(w);
            whole == sub
        })
        .expect("a word qualifies");
    assert_eq!(chosen, GREP_PATTERN);
}

#[test]
fn records_survive_the_codec_and_bad_lines_are_refused() {
    let record = RecordPool::new(SEED, 3).record(2, Time::from_millis(7));
    let bytes = crate::codec::encode(&record).expect("encodes");
    let back: Record = crate::codec::decode(&bytes).expect("decodes");
    assert_eq!(back, record);
    assert_eq!(std::mem::size_of::<Record>(), 112, "as documented");
    let short = crate::codec::encode(&(Time::ZERO, serde_bytes_of(&[b'a'; 99]))).expect("encodes");
    assert!(crate::codec::decode::<Record>(&short).is_err());
    let mut non_ascii = [b'a'; RECORD_BYTES];
    non_ascii[5] = 0xff;
    let bad = crate::codec::encode(&(Time::ZERO, serde_bytes_of(&non_ascii))).expect("encodes");
    assert!(crate::codec::decode::<Record>(&bad).is_err());
}

/// A byte string as serde sees one (not a sequence).
fn serde_bytes_of(b: &[u8]) -> impl Serialize + '_ {
    struct B<'a>(&'a [u8]);
    impl Serialize for B<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    B(b)
}

/// A context on a manual clock collecting every record of a generated stream, by batch.
fn generated(receiver: GeneratorReceiver) -> (StreamingContext, Arc<ManualClock>, Arc<Mutex<Vec<Vec<Record>>>>) {
    let clock = Arc::new(ManualClock::new(Time::ZERO));
    let cluster = StepCluster::builder().workers(2).build();
    let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), clock.clone()).expect("context");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    ssc.receiver_stream(receiver)
        .foreach_rdd(move |rdd, _| {
            sink.lock().expect("lock").push(rdd.collect()?);
            Ok(())
        })
        .expect("output");
    (ssc, clock, seen)
}

#[test]
fn the_receiver_emits_the_records_due_stamped_with_their_schedule() {
    let pool = Arc::new(RecordPool::new(SEED, 7));
    let receiver =
        GeneratorReceiver::new(Arc::clone(&pool), 1_000).start_time(Time::ZERO).chunk_records(64).pool_offset(3);
    let (ssc, clock, seen) = generated(receiver);
    ssc.start_receivers().expect("start");
    clock.advance(Duration::from_millis(250));
    clock.advance(Duration::from_millis(250));
    ssc.stop_receivers();
    assert_eq!(ssc.step().expect("batch").records, 500);
    let records: Vec<Record> = seen.lock().expect("lock").concat();
    assert_eq!(records.len(), 500, "one record per millisecond");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.emitted, Time::from_millis(i as u64 + 1));
        assert_eq!(r.as_bytes(), pool.line(i as u64 + 3));
    }
}

#[test]
fn shared_receivers_together_emit_the_single_schedule() {
    let pool = Arc::new(RecordPool::new(SEED, 7));
    for of in [1u64, 2, 3, 7] {
        let mut all: Vec<Record> = Vec::new();
        for index in 0..of {
            let receiver = GeneratorReceiver::new(Arc::clone(&pool), 1_000)
                .start_time(Time::ZERO)
                .chunk_records(64)
                .pool_offset(3)
                .share(index, of);
            let (ssc, clock, seen) = generated(receiver);
            ssc.start_receivers().expect("start");
            clock.advance(Duration::from_millis(500));
            ssc.stop_receivers();
            ssc.step().expect("batch");
            let mine: Vec<Record> = seen.lock().expect("lock").concat();
            let at = format!("receiver {index} of {of}");
            assert!(mine.iter().all(|r| (r.emitted.as_nanos() / 1_000_000 - 1) % of == index), "{at}");
            all.extend(mine);
        }
        all.sort_by_key(|r| r.emitted);
        assert_eq!(all.len(), 500, "{of} receivers");
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.emitted, Time::from_millis(i as u64 + 1), "{of} receivers");
            assert_eq!(r.as_bytes(), pool.line(i as u64 + 3), "{of} receivers");
        }
    }
}

#[test]
fn a_stopped_receiver_returns_while_waiting_on_a_manual_clock() {
    // Nothing is due for 100 s: the receiver waits on the clock until the stop wakes it.
    let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 7)), 1).start_time(Time::from_millis(1));
    let (ssc, _clock, _seen) = generated(receiver);
    ssc.start_receivers().expect("start");
    ssc.stop_receivers();
    assert_eq!(ssc.step().expect("batch").records, 0);
}

#[test]
fn rate_zero_emits_nothing() {
    let receiver = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 7)), 0).start_time(Time::ZERO);
    let (ssc, clock, _seen) = generated(receiver);
    ssc.start_receivers().expect("start");
    clock.advance(Duration::from_secs(10));
    ssc.stop_receivers();
    assert_eq!(ssc.step().expect("batch").records, 0);
}

#[test]
fn due_counts_follow_the_rate() {
    let g = GeneratorReceiver::new(Arc::new(RecordPool::new(SEED, 1)), 3);
    let start = Time::from_millis(1000);
    let due: BTreeMap<u64, u64> =
        [0, 999, 1000, 1333, 1334, 2000].iter().map(|ms| (*ms, g.due(start, Time::from_millis(*ms)))).collect();
    assert_eq!(due.into_values().collect::<Vec<_>>(), vec![0, 0, 0, 0, 1, 3]);
    assert_eq!(g.due_time(start, 0), Time::from_nanos(1_333_333_333));
    assert_eq!(g.due_time(start, 1), Time::from_nanos(1_666_666_666));
    assert_eq!(g.due(start, g.due_time(start, 1)), 2);
    assert_eq!(g.due(start, Time::from_nanos(1_666_666_665)), 1);
}
