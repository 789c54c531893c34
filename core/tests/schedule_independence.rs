//! Whether a job succeeds, and what it returns, does not depend on where its tasks ran.
#![allow(clippy::unwrap_used)]

use dstream::{Error, StepCluster, TaskErrorKind};
use serde::{Deserialize, Serialize, Serializer};

/// A record that cannot be encoded when it holds 13.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
struct Touchy(u32);

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            Err(serde::ser::Error::custom("touchy"))
        } else {
            s.serialize_u32(self.0)
        }
    }
}

#[test]
fn an_unencodable_cached_record_fails_the_same_way_on_every_schedule() {
    for workers in [1, 2, 4] {
        for seed in 0..8 {
            let cluster = StepCluster::builder().workers(workers).seed(seed).wire(true).build();
            let p = cluster.context().parallelize((0..40).map(Touchy).collect(), 8).unwrap().persist();
            for round in 0..2 {
                match p.count() {
                    Err(Error::TaskFailed { partition: 2, attempts: 1, cause, .. }) => {
                        assert_eq!(cause.kind, TaskErrorKind::Encode, "workers {workers} seed {seed} round {round}")
                    }
                    other => panic!("workers {workers} seed {seed} round {round}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn encodable_cached_records_are_served_across_workers() {
    for seed in 0..16 {
        let cluster = StepCluster::builder().workers(3).seed(seed).wire(true).build();
        let p = cluster.context().parallelize((0..40).filter(|x| *x != 13).map(Touchy).collect(), 8).unwrap().persist();
        let first = p.collect().unwrap();
        let joined = p.map(|t| (t.0 % 5, t.0)).join(&p.map(|t| (t.0 % 5, t.0 + 1)));
        // Keys are residues mod 5: four with 8 values each, and 3 with 7 (13 is left out).
        assert_eq!(joined.count().unwrap(), 4 * 8 * 8 + 7 * 7, "seed {seed}");
        assert_eq!(p.collect().unwrap(), first, "seed {seed}");
    }
}
