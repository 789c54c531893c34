//! The sink of a simulated program: every execution of every output, keyed by output and
//! batch time, and the check of one run's outputs against another's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dstream::{DStream, Data, Error, Time};

/// One execution of an output for one batch: which driver run executed it (0 for the first
/// process, 1 after the first driver restart, ...) and the encoding of what it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// The driver run that executed it.
    pub driver_run: u32,
    /// The records written, encoded (postcard), in the order the output wrote them.
    pub bytes: Vec<u8>,
}

type Written = BTreeMap<(String, Time), Vec<Execution>>;

/// The sink a simulated program writes its outputs to, keyed by output name and batch time,
/// as an idempotent external store would be. Clones share the same records.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    written: Arc<Mutex<Written>>,
    driver_run: Arc<AtomicU32>,
}

impl Outputs {
    fn lock(&self) -> MutexGuard<'_, Written> {
        // Recording never panics half-way, so a poisoned lock holds whole records.
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_driver_run(&self, run: u32) {
        self.driver_run.store(run, Ordering::SeqCst);
    }

    /// Writes every batch of `stream` under `name`: the dataset's records, collected in
    /// partition order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use dstream::{DStream, Error, StreamingContext};
    /// # use dstream_inproc::sim::Outputs;
    /// fn program(_ssc: &StreamingContext, words: DStream<String>, out: &Outputs) -> Result<(), Error> {
    ///     let counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    ///     out.write_each_batch(&counts, "counts")
    /// }
    /// ```
    pub fn write_each_batch<T: Data>(&self, stream: &DStream<T>, name: &str) -> Result<(), Error> {
        let out = self.clone();
        let name = name.to_owned();
        stream.foreach_rdd(move |rdd, time| {
            let records = rdd.collect()?;
            out.record(&name, time, &records)
        })
    }

    /// Records `records` as what output `name` wrote for the batch at `time`.
    pub fn record<T: dstream::serde::Serialize>(&self, name: &str, time: Time, records: &T) -> Result<(), Error> {
        let bytes = dstream::codec::encode(records).map_err(|e| Error::BatchFailed(e.to_string()))?;
        let driver_run = self.driver_run.load(Ordering::SeqCst);
        self.lock().entry((name.to_owned(), time)).or_default().push(Execution { driver_run, bytes });
        Ok(())
    }

    /// Every execution recorded, by output name and batch time.
    pub fn executions(&self) -> BTreeMap<(String, Time), Vec<Execution>> {
        self.lock().clone()
    }
}

/// How a run's outputs differ from the reference's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// An output of a batch never ran.
    Missing {
        /// The output.
        name: String,
        /// The batch.
        time: Time,
    },
    /// An output ran for a batch the reference has no output for.
    Extra {
        /// The output.
        name: String,
        /// The batch.
        time: Time,
    },
    /// An output wrote something else than the reference's.
    Different {
        /// The output.
        name: String,
        /// The batch.
        time: Time,
        /// The driver run that wrote it.
        driver_run: u32,
    },
    /// An output ran more than once in one driver run (only a driver restart may run a batch
    /// again).
    Twice {
        /// The output.
        name: String,
        /// The batch.
        time: Time,
        /// The driver run.
        driver_run: u32,
    },
    /// The reference itself ran an output twice.
    ReferenceNotOnce {
        /// The output.
        name: String,
        /// The batch.
        time: Time,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name, time } => write!(f, "output {name:?} of batch {time} never ran"),
            Mismatch::Extra { name, time } => {
                write!(f, "output {name:?} ran for batch {time}, which the reference has not")
            }
            Mismatch::Different { name, time, driver_run } => {
                write!(f, "output {name:?} of batch {time} wrote other records (driver run {driver_run})")
            }
            Mismatch::Twice { name, time, driver_run } => {
                write!(f, "output {name:?} of batch {time} ran twice in driver run {driver_run}")
            }
            Mismatch::ReferenceNotOnce { name, time } => {
                write!(f, "the reference ran output {name:?} of batch {time} other than once")
            }
        }
    }
}

/// What a check found equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Outputs of batches checked.
    pub outputs: u64,
    /// Executions after a driver restart of outputs that had already run (at least once).
    pub reruns: u64,
}

/// Checks `run` against `reference`: every output of every batch ran, wrote exactly what the
/// reference wrote, and ran once per driver run (more than once only across a driver restart,
/// which reruns the batches after the last completed one).
pub fn check(run: &Written, reference: &Written) -> Result<Checked, Mismatch> {
    let mut checked = Checked::default();
    for ((name, time), want) in reference {
        let [want] = want.as_slice() else {
            return Err(Mismatch::ReferenceNotOnce { name: name.clone(), time: *time });
        };
        let Some(got) = run.get(&(name.clone(), *time)).filter(|g| !g.is_empty()) else {
            return Err(Mismatch::Missing { name: name.clone(), time: *time });
        };
        for (i, e) in got.iter().enumerate() {
            if e.bytes != want.bytes {
                return Err(Mismatch::Different { name: name.clone(), time: *time, driver_run: e.driver_run });
            }
            if got[..i].iter().any(|earlier| earlier.driver_run == e.driver_run) {
                return Err(Mismatch::Twice { name: name.clone(), time: *time, driver_run: e.driver_run });
            }
        }
        checked.outputs += 1;
        checked.reruns += got.len() as u64 - 1;
    }
    if let Some((name, time)) = run.keys().find(|k| !reference.contains_key(*k)) {
        return Err(Mismatch::Extra { name: name.clone(), time: *time });
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entries: &[(&str, u64, &[(u32, u8)])]) -> Written {
        let mut w = Written::new();
        for (name, secs, execs) in entries {
            let v = execs.iter().map(|(run, b)| Execution { driver_run: *run, bytes: vec![*b] }).collect();
            w.insert((name.to_string(), Time::from_millis(secs * 1000)), v);
        }
        w
    }

    #[test]
    fn the_check_finds_each_kind_of_difference() {
        let reference = written(&[("a", 1, &[(0, 1)]), ("a", 2, &[(0, 2)])]);
        let t = |s: u64| Time::from_millis(s * 1000);
        let cases: Vec<(Written, Result<Checked, Mismatch>)> = vec![
            (reference.clone(), Ok(Checked { outputs: 2, reruns: 0 })),
            (written(&[("a", 1, &[(0, 1)]), ("a", 2, &[(0, 2), (1, 2)])]), Ok(Checked { outputs: 2, reruns: 1 })),
            (written(&[("a", 1, &[(0, 1)])]), Err(Mismatch::Missing { name: "a".into(), time: t(2) })),
            (written(&[("a", 1, &[(0, 1)]), ("a", 2, &[])]), Err(Mismatch::Missing { name: "a".into(), time: t(2) })),
            (
                written(&[("a", 1, &[(0, 1)]), ("a", 2, &[(0, 2)]), ("b", 1, &[(0, 1)])]),
                Err(Mismatch::Extra { name: "b".into(), time: t(1) }),
            ),
            (
                written(&[("a", 1, &[(0, 1)]), ("a", 2, &[(0, 2), (1, 3)])]),
                Err(Mismatch::Different { name: "a".into(), time: t(2), driver_run: 1 }),
            ),
            (
                written(&[("a", 1, &[(0, 1), (0, 1)]), ("a", 2, &[(0, 2)])]),
                Err(Mismatch::Twice { name: "a".into(), time: t(1), driver_run: 0 }),
            ),
        ];
        for (i, (run, want)) in cases.into_iter().enumerate() {
            assert_eq!(check(&run, &reference), want, "case {i}");
        }
        let twice = written(&[("a", 1, &[(0, 1), (1, 1)])]);
        assert_eq!(check(&twice, &twice), Err(Mismatch::ReferenceNotOnce { name: "a".into(), time: t(1) }));
    }
}
