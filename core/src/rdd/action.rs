//! Actions: they submit a job that runs a function over every partition on the workers and
//! combine the per-partition results on the caller's side.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Rdd, RddNode};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::graph::ActionNode;
use crate::ids::RddId;
use crate::message::{Builtin, Payload};
use crate::task::TaskContext;
use crate::Data;

/// An action folds each partition's chunks into an accumulator `A` (made from the partition's
/// index), then turns it into the partition's result `R`.
struct Action<T, A, R, I, S, F> {
    rdd: Arc<RddNode<T>>,
    init: I,
    step: S,
    finish: F,
    _types: PhantomData<fn() -> (A, R)>,
}

impl<T, A, R, I, S, F> ActionNode for Action<T, A, R, I, S, F>
where
    T: Data,
    R: Serialize + DeserializeOwned + Any + Send + Sync,
    I: Fn(usize) -> A + Send + Sync,
    S: Fn(&mut A, &mut Vec<T>) + Send + Sync,
    F: Fn(A) -> R + Send + Sync,
{
    fn rdd(&self) -> RddId {
        self.rdd.id()
    }

    fn run(&self, partition: usize, tc: &mut TaskContext<'_>) -> Result<Payload, TaskError> {
        let mut acc = (self.init)(partition);
        self.rdd.run(partition, tc, &mut |chunk: &mut Vec<T>| {
            (self.step)(&mut acc, chunk);
            Ok(())
        })?;
        Ok(Payload::local(Arc::new((self.finish)(acc))))
    }

    fn encode_result(&self, payload: &Payload) -> Result<Payload, TaskError> {
        payload.encoded::<R>().map_err(|e| TaskError::new(TaskErrorKind::Encode, e.to_string()))
    }
}

/// Runs `builtin` over partition `split` of `rdd`: the per-partition result the matching
/// action (`collect`, `count`, `take`) computes, encoded when `encode` says so.
pub(crate) fn run_builtin<T: Data>(
    rdd: &RddNode<T>,
    builtin: Builtin,
    split: usize,
    tc: &mut TaskContext<'_>,
    encode: bool,
) -> Result<Payload, TaskError> {
    fn done<R: Serialize + Any + Send + Sync>(value: R, encode: bool) -> Result<Payload, TaskError> {
        let payload = Payload::local(Arc::new(value));
        if !encode {
            return Ok(payload);
        }
        payload.encoded::<R>().map_err(|e| TaskError::new(TaskErrorKind::Encode, e.to_string()))
    }
    match builtin {
        Builtin::Collect => {
            let mut all = Vec::new();
            rdd.run(split, tc, &mut |chunk: &mut Vec<T>| {
                all.append(chunk);
                Ok(())
            })?;
            done(all, encode)
        }
        Builtin::Count => {
            // A partition held in memory (input blocks, a cached state) is counted without
            // copying a record.
            if let Some(held) = rdd.borrowed(split, tc)? {
                return done(held.len() as u64, encode);
            }
            let mut n = 0u64;
            rdd.run(split, tc, &mut |chunk: &mut Vec<T>| {
                n += chunk.len() as u64;
                Ok(())
            })?;
            done(n, encode)
        }
        Builtin::Take { n } => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut first = Vec::new();
            rdd.run(split, tc, &mut |chunk: &mut Vec<T>| {
                let room = n.saturating_sub(first.len());
                first.extend(chunk.drain(..room.min(chunk.len())));
                Ok(())
            })?;
            done(first, encode)
        }
    }
}

impl<T: Data> Rdd<T> {
    /// Runs an action over every partition and returns the per-partition results in order.
    /// `builtin` names what the action computes when it is a built-in one, so a worker without
    /// the action's node can run it (its per-partition result must then be what the built-in
    /// gives).
    fn run_action<A: 'static, R>(
        &self,
        builtin: Option<Builtin>,
        init: impl Fn(usize) -> A + Send + Sync + 'static,
        step: impl Fn(&mut A, &mut Vec<T>) + Send + Sync + 'static,
        finish: impl Fn(A) -> R + Send + Sync + 'static,
    ) -> Result<Vec<R>, Error>
    where
        R: Serialize + DeserializeOwned + Any + Send + Sync + Clone,
    {
        let graph = self.context().graph();
        let id = graph.next_action_id();
        let action: Arc<dyn ActionNode> =
            Arc::new(Action { rdd: Arc::clone(self.node()), init, step, finish, _types: PhantomData });
        graph.register_action(id, &action);
        let partitions: Vec<u32> = (0..self.num_partitions() as u32).collect();
        let results = self.context().run_job(id, action, partitions, builtin)?;
        results
            .into_iter()
            .map(|p| {
                let value = p.typed::<R>()?;
                Ok(Arc::try_unwrap(value).unwrap_or_else(|shared| (*shared).clone()))
            })
            .collect()
    }

    /// The records of partition `split` alone, by a job that runs once (lost input fails it,
    /// see [`Context::run_job_once`](crate::Context)): a partition computed ahead of its batch.
    pub(crate) fn collect_partition(&self, split: usize) -> Result<Vec<T>, Error> {
        let graph = self.context().graph();
        let id = graph.next_action_id();
        let action: Arc<dyn ActionNode> = Arc::new(Action {
            rdd: Arc::clone(self.node()),
            init: |_| Vec::new(),
            step: |all: &mut Vec<T>, chunk: &mut Vec<T>| all.append(chunk),
            finish: |all: Vec<T>| all,
            _types: PhantomData,
        });
        graph.register_action(id, &action);
        let split = u32::try_from(split).map_err(|_| Error::Internal("a partition index past u32::MAX"))?;
        let result = self.context().run_job_once(id, action, vec![split], Some(Builtin::Collect))?;
        let value = result.into_iter().next().ok_or(Error::Internal("a job gave no result for its partition"))?;
        let records = value.typed::<Vec<T>>()?;
        Ok(Arc::try_unwrap(records).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// All records, in partition order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3], 3)?.collect()?, vec![1, 2, 3]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn collect(&self) -> Result<Vec<T>, Error> {
        let parts = self.run_action(
            Some(Builtin::Collect),
            |_| Vec::new(),
            |acc: &mut Vec<T>, chunk| acc.append(chunk),
            |acc| acc,
        )?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// The number of records.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.parallelize(vec!['a'; 10], 3)?.count()?, 10);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn count(&self) -> Result<u64, Error> {
        let parts = self.run_action(Some(Builtin::Count), |_| 0u64, |n, chunk| *n += chunk.len() as u64, |n| n)?;
        Ok(parts.into_iter().sum())
    }

    /// The records merged with `f`, which must be associative and commutative; an empty dataset
    /// is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.parallelize((1..=10u32).collect(), 3)?.reduce(|a, b| a + b)?, 55);
    /// assert!(ctx.parallelize(Vec::<u32>::new(), 3)?.reduce(|a, b| a + b).is_err());
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Result<T, Error> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let parts = self.run_action(
            None,
            |_| None,
            move |acc: &mut Option<T>, chunk| {
                for x in chunk.drain(..) {
                    *acc = Some(match acc.take() {
                        Some(a) => g(a, x),
                        None => x,
                    });
                }
            },
            |acc| acc,
        )?;
        parts.into_iter().flatten().reduce(|a, b| f(a, b)).ok_or(Error::EmptyRdd { action: "reduce", rdd: self.id() })
    }

    /// The records folded into `zero` with `f`, per partition and then across partitions;
    /// `zero` must be an identity of `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.parallelize(vec![2u64, 3, 4], 2)?.fold(1, |a, b| a * b)?, 24);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn fold(&self, zero: T, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Result<T, Error> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let z = zero.clone();
        let parts = self.run_action(
            None,
            move |_| Some(z.clone()),
            move |acc: &mut Option<T>, chunk| {
                for x in chunk.drain(..) {
                    *acc = acc.take().map(|a| g(a, x));
                }
            },
            |acc| acc,
        )?;
        Ok(parts.into_iter().flatten().fold(zero, |a, b| f(a, b)))
    }

    /// The first `n` records, in partition order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// assert_eq!(ctx.parallelize((0..100).collect(), 4)?.take(3)?, vec![0, 1, 2]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn take(&self, n: usize) -> Result<Vec<T>, Error> {
        let parts = self.run_action(
            Some(Builtin::Take { n: n as u64 }),
            |_| Vec::new(),
            move |acc: &mut Vec<T>, chunk| {
                let room = n.saturating_sub(acc.len());
                acc.extend(chunk.drain(..room.min(chunk.len())));
            },
            |acc| acc,
        )?;
        Ok(parts.into_iter().flatten().take(n).collect())
    }

    /// The `n` smallest records by `cmp`, smallest first (Spark's `takeOrdered(n)(ordering)`).
    /// Each partition keeps only its own `n` smallest on the worker, so the caller receives at
    /// most `n` records per partition. Records that compare equal keep partition order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let words = ctx.parallelize(["ccc", "a", "bb", "dddd"].map(String::from).to_vec(), 2)?;
    /// assert_eq!(words.take_ordered_by(2, |a, b| b.len().cmp(&a.len()))?, vec!["dddd", "ccc"]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "takeOrdered")]
    pub fn take_ordered_by(
        &self,
        n: usize,
        cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Send + Sync + 'static,
    ) -> Result<Vec<T>, Error> {
        let cmp = Arc::new(cmp);
        let (step_cmp, finish_cmp) = (Arc::clone(&cmp), Arc::clone(&cmp));
        let parts = self.run_action(
            None,
            |_| Vec::new(),
            move |acc: &mut Vec<T>, chunk| {
                acc.append(chunk);
                // Bounded: at most 2n (plus one chunk) records held while a partition streams by.
                if acc.len() > n.saturating_mul(2).max(1) {
                    acc.sort_by(|a, b| step_cmp(a, b));
                    acc.truncate(n);
                }
            },
            move |mut acc| {
                acc.sort_by(|a, b| finish_cmp(a, b));
                acc.truncate(n);
                acc
            },
        )?;
        let mut all: Vec<T> = parts.into_iter().flatten().collect();
        all.sort_by(|a, b| cmp(a, b));
        all.truncate(n);
        Ok(all)
    }

    /// The `n` largest records by `cmp`, largest first (Spark's `top(n)(ordering)`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let pairs = ctx.parallelize(vec![('a', 3), ('b', 9), ('c', 1)], 2)?;
    /// assert_eq!(pairs.top_by(2, |x, y| x.1.cmp(&y.1))?, vec![('b', 9), ('a', 3)]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn top_by(
        &self,
        n: usize,
        cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Send + Sync + 'static,
    ) -> Result<Vec<T>, Error> {
        self.take_ordered_by(n, move |a, b| cmp(b, a))
    }

    #[doc(alias = "foreachPartition")]
    /// Runs `f` on the workers over each whole partition (its index and records), for side
    /// effects such as writing to an external system. `f` must be safe to run more than once for
    /// the same partition: a failed attempt is retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let s = Arc::clone(&seen);
    /// ctx.parallelize(vec![1, 2, 3], 2)?.foreach_partition(move |_, xs| { s.fetch_add(xs.len(), Ordering::SeqCst); })?;
    /// assert_eq!(seen.load(Ordering::SeqCst), 3);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn foreach_partition(&self, f: impl Fn(usize, Vec<T>) + Send + Sync + 'static) -> Result<(), Error> {
        self.run_action(
            None,
            |split| (split, Vec::new()),
            |acc: &mut (usize, Vec<T>), chunk| acc.1.append(chunk),
            move |(split, records)| f(split, records),
        )?;
        Ok(())
    }
}

impl<T: Data + Ord> Rdd<T> {
    /// The `n` smallest records, smallest first (Spark's `takeOrdered`); see
    /// [`Rdd::take_ordered_by`] for another order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let numbers = ctx.parallelize(vec![5, 1, 4, 2, 3], 3)?;
    /// assert_eq!(numbers.take_ordered(3)?, vec![1, 2, 3]);
    /// assert_eq!(numbers.take_ordered(9)?, vec![1, 2, 3, 4, 5]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "takeOrdered")]
    pub fn take_ordered(&self, n: usize) -> Result<Vec<T>, Error> {
        self.take_ordered_by(n, T::cmp)
    }

    /// The `n` largest records, largest first (Spark's `top`); see [`Rdd::top_by`] for
    /// another order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let cluster = dstream::StepCluster::builder().workers(2).build();
    /// # let ctx = cluster.context();
    /// let numbers = ctx.parallelize(vec![5, 1, 4, 2, 3], 3)?;
    /// assert_eq!(numbers.top(2)?, vec![5, 4]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn top(&self, n: usize) -> Result<Vec<T>, Error> {
        self.top_by(n, T::cmp)
    }
}
