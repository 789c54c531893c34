//! Identifiers of graph nodes, jobs, stages, tasks, cluster members and blocks.
//!
//! Graph ids ([`RddId`], [`ShuffleId`], [`ActionId`], [`StreamId`]) come from construction order, so every
//! process that runs the same program assigns the same ids to the same nodes.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A dataset (RDD) in the program's graph.
    RddId,
    "rdd"
);
id_type!(
    /// A shuffle: the wide dependency between a map-side dataset and a shuffled one.
    ShuffleId,
    "shuffle"
);
id_type!(
    /// An action (collect, count, ...) registered in the graph; result tasks name it.
    ActionId,
    "action"
);
id_type!(
    /// A job: one action over one dataset, submitted to the driver.
    JobId,
    "job"
);
id_type!(
    /// A stage: a set of tasks that pipeline narrow dependencies, ended by a shuffle or a result.
    StageId,
    "stage"
);
id_type!(
    /// A task: one partition of one stage. Retries keep the id and raise the attempt number.
    TaskId,
    "task"
);

/// A stream in the program's stream graph, numbered in construction order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream{}", self.0)
    }
}

/// A worker of the cluster, numbered from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub u32);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker{}", self.0)
    }
}

/// A member of the cluster: the driver or one of the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeId {
    /// The one driver of the application.
    Driver,
    /// A worker.
    Worker(WorkerId),
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Driver => f.write_str("driver"),
            NodeId::Worker(w) => w.fmt(f),
        }
    }
}

/// A block held in a worker's block store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BlockId {
    /// A cached partition of a persisted dataset.
    Rdd {
        /// The dataset.
        rdd: RddId,
        /// The partition.
        partition: u32,
    },
    /// The bucket for one reduce partition written by one map task of a shuffle.
    Shuffle {
        /// The shuffle.
        shuffle: ShuffleId,
        /// The map-side partition that wrote the bucket.
        map: u32,
        /// The reduce-side partition the bucket is for.
        reduce: u32,
    },
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::Rdd { rdd, partition } => write!(f, "{rdd}/p{partition}"),
            BlockId::Shuffle { shuffle, map, reduce } => write!(f, "{shuffle}/m{map}/r{reduce}"),
        }
    }
}
