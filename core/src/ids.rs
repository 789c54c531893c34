//! Identifiers of graph nodes, jobs, stages, tasks, cluster members and blocks.
//!
//! Graph ids ([`RddId`], [`ShuffleId`], [`ActionId`]) are a [`Scope`] and an index within it,
//! so every process that runs the same program derives the same ids for the same nodes by
//! itself: the program's static graph is numbered in construction order, and what a batch
//! generates is numbered within the batch's own scope (the stream node and the batch time, or
//! the output operation and the batch time), however many batches ran before and in whatever
//! order the streams were asked for them. [`StreamId`]s number the stream graph in
//! construction order.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// A stream in the program's stream graph, numbered in construction order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream{}", self.0)
    }
}

/// Where a graph node was made, which is what lets any process derive its id by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// The program as its job function builds it, numbered in construction order.
    Program,
    /// What stream `stream` generated for the batch at `time`, including every dataset its
    /// operator (a `transform` closure, a window, a state step) derived from the batch.
    Batch {
        /// The stream node.
        stream: StreamId,
        /// The batch time.
        time: Time,
    },
    /// What output operation number `output` (in definition order) derived from the batch at
    /// `time`: the datasets and actions of a `foreach_rdd` closure, for example.
    Output {
        /// The output operation, from zero.
        output: u32,
        /// The batch time.
        time: Time,
    },
    /// A data checkpoint of `stream`'s dataset of the batch at `time`: the job that writes it,
    /// or the dataset that reads it back after a restart.
    Checkpoint {
        /// The checkpointed stream.
        stream: StreamId,
        /// The batch time of the dataset.
        time: Time,
    },
    /// Made by the driver after the program was built, outside any batch: an ad-hoc query, a
    /// `slice` of remembered datasets. Only processes that share the driver's memory can
    /// resolve such an id.
    Driver,
}

impl Scope {
    /// The batch time of a scope that belongs to one batch.
    pub fn time(self) -> Option<Time> {
        match self {
            Scope::Batch { time, .. } | Scope::Output { time, .. } | Scope::Checkpoint { time, .. } => Some(time),
            Scope::Program | Scope::Driver => None,
        }
    }

    /// Why a process that runs the program may not know a node of this scope: the likely
    /// cause, for the error a worker returns.
    pub fn unknown_cause(self) -> &'static str {
        match self {
            Scope::Program => "the worker built another program, or built it differently (start every process from the same binary and arguments)",
            Scope::Batch { .. } => "the worker has not generated this batch, or has already forgotten it",
            Scope::Output { .. } => "it was made inside an output operation, which runs on the driver only, so only workers sharing the driver's memory can compute it (derive it in a `transform` instead, or use a built-in action: collect, count, take)",
            Scope::Checkpoint { .. } => "the worker has not read this checkpoint",
            Scope::Driver => "it was made by the driver after the program was built (an ad-hoc query or a slice), so only workers sharing the driver's memory can compute it",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Program => Ok(()),
            Scope::Batch { stream, time } => write!(f, "{stream}@{time}/"),
            Scope::Output { output, time } => write!(f, "output{output}@{time}/"),
            Scope::Checkpoint { stream, time } => write!(f, "checkpoint-{stream}@{time}/"),
            Scope::Driver => f.write_str("driver/"),
        }
    }
}

macro_rules! graph_id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name {
            /// Where the node was made.
            pub scope: Scope,
            /// Its number among the nodes of its kind made in that scope, from zero.
            pub index: u32,
        }

        impl $name {
            /// The node numbered `index` among the program's static nodes.
            pub const fn program(index: u32) -> $name {
                $name { scope: Scope::Program, index }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("{}", $prefix, "{}"), self.scope, self.index)
            }
        }
    };
}

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

graph_id_type!(
    /// A dataset (RDD) in the program's graph.
    RddId,
    "rdd"
);
graph_id_type!(
    /// A shuffle: the wide dependency between a map-side dataset and a shuffled one.
    ShuffleId,
    "shuffle"
);
graph_id_type!(
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
    /// One block of an input stream: records stored together (one push, one receiver store,
    /// or one partition of a queued or logged batch), on as many workers as the driver's
    /// `input_replicas` says. A batch's partition reads one or more of them, in order.
    Input {
        /// The input stream.
        stream: StreamId,
        /// The block's number: the stream numbers its blocks from zero, in the order they are
        /// stored, for as long as the stream exists.
        seq: u64,
    },
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::Rdd { rdd, partition } => write!(f, "{rdd}/p{partition}"),
            BlockId::Shuffle { shuffle, map, reduce } => write!(f, "{shuffle}/m{map}/r{reduce}"),
            BlockId::Input { stream, seq } => write!(f, "input-{stream}/b{seq}"),
        }
    }
}
