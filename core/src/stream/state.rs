//! Stateful streams: [`DStream::update_state_by_key`] and [`DStream::map_with_state`].
//!
//! The state is a dataset too: `state_t = step(state_{t-1}, batch_t)`, nothing is mutated in
//! place. Each state dataset is hash-partitioned by key into a fixed number of partitions and
//! persisted, so the next batch reads the previous state narrowly from the block store, on the
//! worker that holds it; only the batch's values are shuffled (grouped by key into the same
//! partitioning). Within a partition the keys of the previous state come first, in their order,
//! then the keys new to the state: outputs do not depend on placement or timing.
//!
//! Each state dataset's lineage reaches back to the first batch (a lost partition is recomputed
//! from it), so every past state and batch shuffle stays referenced until checkpointing cuts
//! the lineage, as in Spark, where these operators require a checkpoint directory.

use std::ops::Deref;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::{BatchCtx, DStream, StreamCompute, StreamNode};
use crate::error::{Error, TaskError, TaskErrorKind};
use crate::rdd::state_step::{state_step, KeyUpdate};
use crate::rdd::Rdd;
use crate::time::Time;
use crate::{Data, Key};

/// A stream node's link to itself, set once the node exists.
type SelfRef<T> = Arc<OnceLock<Weak<StreamNode<T>>>>;

/// A node's own previous dataset, one slide before `time` (none before the first batch).
fn previous<T: Data>(
    this: &OnceLock<Weak<StreamNode<T>>>,
    time: Time,
    slide: Duration,
    b: &BatchCtx<'_>,
) -> Result<Option<Rdd<T>>, Error> {
    let previous = time - slide;
    match this.get().and_then(Weak::upgrade) {
        Some(node) if previous > b.zero => node.get(previous, b),
        _ => Ok(None),
    }
}

/// The parent's dataset of batch `time`, or an empty one when it has none.
fn batch_of<T: Data>(parent: &StreamNode<T>, time: Time, b: &BatchCtx<'_>) -> Result<Rdd<T>, Error> {
    Ok(parent.get(time, b)?.unwrap_or_else(|| b.ctx.parallelize_partitions(Vec::new())))
}

/// Registers a stream computed by `make(this)`, where `this` will point to the stream itself.
fn self_reading<T: Data, C: StreamCompute<T> + 'static>(
    parent: &DStream<impl Data>,
    name: &'static str,
    make: impl FnOnce(SelfRef<T>) -> C,
) -> DStream<T> {
    let this: SelfRef<T> = Arc::new(OnceLock::new());
    let stream = DStream::new_node(
        parent.context(),
        name,
        parent.slide_duration(),
        vec![parent.as_parent()],
        make(Arc::clone(&this)),
    );
    // A fresh lock is always empty, so this cannot fail.
    let _ = this.set(Arc::downgrade(stream.node()));
    stream
}

/// The user function of [`DStream::update_state_by_key`].
type UpdateFn<V, S> = Arc<dyn Fn(Vec<V>, Option<S>) -> Option<S> + Send + Sync>;

/// See [`DStream::update_state_by_key`].
struct UpdateState<K, V, S> {
    parent: Arc<StreamNode<(K, V)>>,
    /// This stream itself, for the previous state (set once the node exists).
    this: SelfRef<(K, S)>,
    partitions: usize,
    f: UpdateFn<V, S>,
    /// The state before the first batch, if any.
    initial: Option<Rdd<(K, S)>>,
}

impl<K: Key, V: Data, S: Data> StreamCompute<(K, S)> for UpdateState<K, V, S> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<(K, S)>>, Error> {
        let prev = match previous(&self.this, time, self.parent.slide, b)? {
            Some(prev) => Some(prev),
            None => self.initial.clone(),
        };
        let batch = batch_of(&self.parent, time, b)?;
        let f = Arc::clone(&self.f);
        let update: KeyUpdate<K, V, S> = Arc::new(move |_: &K, state, values| Ok(f(values, state)));
        // The next batch reads this state back from the block store.
        Ok(Some(state_step(b.ctx, prev.as_ref(), &batch, self.partitions, update).persist()))
    }
}

/// The state of one key as [`DStream::map_with_state`]'s function sees it: read it, replace it,
/// remove it, and learn whether the key is timing out. Spark's `State`, with `get` returning
/// an `Option` (Spark's `getOption`).
///
/// # Examples
///
/// Counting each word until it was seen three times, then emitting it and forgetting it:
///
/// ```
/// use dstream::testing::StreamTest;
/// use dstream::{State, StateSpec};
///
/// let spec = StateSpec::function(|word: &char, seen: Option<u32>, state: &mut State<u32>| {
///     let total = state.get().copied().unwrap_or(0) + seen?;
///     if total >= 3 {
///         state.remove(); // the word leaves the state
///         Some(*word)
///     } else {
///         state.update(total); // creates the state on the word's first value
///         None
///     }
/// });
/// let input = vec![vec!['a', 'b', 'a'], vec!['a', 'b'], vec!['a']];
/// let pairs = |s: dstream::DStream<char>| s.map(|w| (w, 1u32));
/// let done = StreamTest::new().run(input.clone(), |s| pairs(s).map_with_state(spec.clone()).unwrap().into_stream())?;
/// assert_eq!(done, vec![vec![], vec!['a'], vec![]]);
/// let mut states = StreamTest::new().run(input, |s| pairs(s).map_with_state(spec.clone()).unwrap().state_snapshots())?;
/// states.iter_mut().for_each(|b| b.sort());
/// assert_eq!(states, vec![vec![('a', 2), ('b', 1)], vec![('b', 2)], vec![('a', 1), ('b', 2)]]);
/// # Ok::<(), dstream::Error>(())
/// ```
#[derive(Debug)]
pub struct State<S> {
    value: Option<S>,
    timing_out: bool,
    /// Set when the function broke a rule of the state; it fails the batch.
    misuse: Option<&'static str>,
}

impl<S> State<S> {
    fn new(value: Option<S>, timing_out: bool) -> State<S> {
        State { value, timing_out, misuse: None }
    }

    /// Whether the key has a state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The key's state, if it has one.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// Replaces the key's state (creating it if the key had none). As in Spark, a state that is
    /// timing out cannot be updated: the call changes nothing and is recorded as an error of
    /// the function, which fails the task like a panic would (retried, then the batch fails
    /// with a [`TaskFailed`](crate::Error::TaskFailed) error saying so).
    pub fn update(&mut self, state: S) {
        if self.timing_out {
            self.misuse = Some("map_with_state: State::update called on a state that is timing out");
        } else {
            self.value = Some(state);
        }
    }

    /// Removes the key's state: it leaves the state after this call. Removing a state that
    /// does not exist, or one that is timing out (it is removed anyway), does nothing.
    pub fn remove(&mut self) {
        self.value = None;
    }

    #[doc(alias = "isTimingOut")]
    /// Whether this call is the key's timeout call: the key had no value for longer than the
    /// spec's timeout, and it leaves the state after this call.
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }

    fn checked(&self) -> Result<(), TaskError> {
        match self.misuse {
            // Like Spark's failed `require`: user code broke a rule. Retries fail the same way.
            Some(message) => Err(TaskError::new(TaskErrorKind::Panicked, message)),
            None => Ok(()),
        }
    }
}

/// The function of a [`StateSpec`], with the batch time.
type MapFn<K, V, S, U> = Arc<dyn Fn(Time, &K, Option<V>, &mut State<S>) -> Option<U> + Send + Sync>;

/// What [`DStream::map_with_state`] does, in the manner of Spark's `StateSpec`: the function
/// called for every value (and for keys timing out), an optional initial state, the number of
/// state partitions and an optional idle timeout.
///
/// # Examples
///
/// Sessions of clicks per user, starting from an initial state: a user silent for longer than
/// the timeout ends the session, and its timeout call emits the session's count.
///
/// ```
/// use std::time::Duration;
/// use dstream::testing::StreamTest;
/// use dstream::{State, StateSpec};
///
/// let input = vec![vec![('a', 1u32), ('b', 1)], vec![('a', 1)], vec![('a', 1)], vec![]];
/// let mut ended = StreamTest::new().run(input, |clicks| {
///     // User 'c' had a session of 5 clicks before the first batch.
///     let initial = clicks.context().context().parallelize(vec![('c', 5u32)], 2).unwrap();
///     let spec = StateSpec::function(|user: &char, click: Option<u32>, session: &mut State<u32>| match click {
///         Some(n) => {
///             session.update(session.get().copied().unwrap_or(0) + n);
///             None
///         }
///         // The timeout call: no value, and the state leaves after it.
///         None => Some((*user, session.get().copied().unwrap_or(0))),
///     })
///     .initial_state(initial)
///     .partitions(2)
///     .timeout(Duration::from_secs(1)); // the test's batches are 1 s apart
///     clicks.map_with_state(spec).unwrap().into_stream()
/// })?;
/// ended.iter_mut().for_each(|b| b.sort());
/// // 'b' and 'c' were last updated at the first batch: idle for longer than 1 s at the third.
/// assert_eq!(ended, vec![vec![], vec![], vec![('b', 1), ('c', 5)], vec![]]);
/// # Ok::<(), dstream::Error>(())
/// ```
pub struct StateSpec<K, V, S, U> {
    f: MapFn<K, V, S, U>,
    initial: Option<Rdd<(K, S)>>,
    partitions: Option<usize>,
    timeout: Option<Duration>,
}

impl<K: Key, V: Data, S: Data, U: Data> StateSpec<K, V, S, U> {
    /// A spec calling `f(key, value, state)` for every record of every batch, in order, and
    /// emitting what it returns. `value` is `None` only in the timeout call (see
    /// [`StateSpec::timeout`]).
    pub fn function(f: impl Fn(&K, Option<V>, &mut State<S>) -> Option<U> + Send + Sync + 'static) -> Self {
        Self::function_with_time(move |_, k, v, s| f(k, v, s))
    }

    /// A spec calling `f(batch_time, key, value, state)`: [`StateSpec::function`] whose
    /// function also gets the time of the batch it runs for (Spark's
    /// `StateSpec.function((Time, K, Option[V], State[S]) => Option[U])`). The time is the
    /// batch's logical time, the same in every run and on every worker, so the function stays
    /// deterministic.
    ///
    /// # Examples
    ///
    /// The first batch each key was seen in:
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// use dstream::{State, StateSpec, Time};
    /// let spec = StateSpec::function_with_time(|time: Time, k: &char, _v: Option<()>, state: &mut State<Time>| {
    ///     if state.exists() { return None; }
    ///     state.update(time);
    ///     Some((*k, time.as_millis()))
    /// });
    /// let input = vec![vec![('a', ())], vec![('a', ()), ('b', ())]];
    /// let out = StreamTest::new().run(input, |s| s.map_with_state(spec.clone()).unwrap().into_stream())?;
    /// assert_eq!(out, vec![vec![('a', 1000)], vec![('b', 2000)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn function_with_time(
        f: impl Fn(Time, &K, Option<V>, &mut State<S>) -> Option<U> + Send + Sync + 'static,
    ) -> Self {
        StateSpec { f: Arc::new(f), initial: None, partitions: None, timeout: None }
    }

    /// The state before the first batch (a repeated key keeps one of its states). Its keys
    /// count as updated at the first batch for the timeout.
    pub fn initial_state(mut self, state: Rdd<(K, S)>) -> Self {
        self.initial = Some(state);
        self
    }

    /// The number of hash partitions of the state (zero is refused by
    /// [`DStream::map_with_state`]). Default: those of the initial state, else those of the
    /// first batch's dataset.
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// An idle timeout: a key that received no value for longer than `timeout` (counting from
    /// the batch that last gave it one) gets one last call, with no value and a state that
    /// [`is timing out`](State::is_timing_out), then leaves the state. Keys are checked every
    /// batch.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<K, V, S, U> Clone for StateSpec<K, V, S, U> {
    fn clone(&self) -> Self {
        StateSpec {
            f: Arc::clone(&self.f),
            initial: self.initial.clone(),
            partitions: self.partitions,
            timeout: self.timeout,
        }
    }
}

impl<K: Key, V, S: Data, U> std::fmt::Debug for StateSpec<K, V, S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSpec")
            .field("initial", &self.initial.as_ref().map(|r| r.id()))
            .field("partitions", &self.partitions)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the persisted state of `map_with_state` holds per key: the state with the time of the
/// batch that last gave the key a value (none once removed), and the records the function
/// emitted for the key in this batch.
type Slot<S, U> = (Option<(S, Time)>, Vec<U>);

/// See [`DStream::map_with_state`].
struct MapWithState<K, V, S, U> {
    parent: Arc<StreamNode<(K, V)>>,
    /// This stream itself, for the previous state (set once the node exists).
    this: SelfRef<(K, Slot<S, U>)>,
    spec: StateSpec<K, V, S, U>,
}

impl<K: Key, V: Data, S: Data, U: Data> StreamCompute<(K, Slot<S, U>)> for MapWithState<K, V, S, U> {
    fn compute(&self, time: Time, b: &BatchCtx<'_>) -> Result<Option<Rdd<(K, Slot<S, U>)>>, Error> {
        let prev = match previous(&self.this, time, self.parent.slide, b)? {
            Some(prev) => Some(prev),
            None => self.spec.initial.as_ref().map(|i| i.map_values(move |s| (Some((s, time)), Vec::new()))),
        };
        let batch = batch_of(&self.parent, time, b)?;
        // The state keeps its partitioning: after the first batch, the previous state says it.
        let partitions = match (&prev, self.spec.partitions) {
            (_, Some(n)) => n,
            (Some(p), None) => p.num_partitions(),
            (None, None) => batch.num_partitions(),
        };
        let (f, timeout) = (Arc::clone(&self.spec.f), self.spec.timeout);
        let update: KeyUpdate<K, V, Slot<S, U>> =
            Arc::new(move |k: &K, prev, values| map_key(&f, timeout, time, k, prev, values));
        Ok(Some(state_step(b.ctx, prev.as_ref(), &batch, partitions, update).persist()))
    }
}

/// One key's step of `map_with_state` at batch `time`.
fn map_key<K, V, S, U>(
    f: &MapFn<K, V, S, U>,
    timeout: Option<Duration>,
    time: Time,
    key: &K,
    prev: Option<Slot<S, U>>,
    values: Vec<V>,
) -> Result<Option<Slot<S, U>>, TaskError> {
    let (old, updated) = match prev.and_then(|(state, _)| state) {
        Some((s, t)) => (Some(s), t),
        None => (None, time),
    };
    let mut emitted = Vec::new();
    let next = if values.is_empty() {
        match (old, timeout) {
            // Removed in the previous batch, and nothing new: the key is gone.
            (None, _) => return Ok(None),
            (Some(s), Some(timeout)) if time - updated > timeout => {
                let mut state = State::new(Some(s), true);
                emitted.extend(f(time, key, None, &mut state));
                state.checked()?;
                None
            }
            (Some(s), _) => Some((s, updated)),
        }
    } else {
        let mut state = State::new(old, false);
        for v in values {
            emitted.extend(f(time, key, Some(v), &mut state));
        }
        state.value.map(|s| (s, time))
    };
    Ok((next.is_some() || !emitted.is_empty()).then_some((next, emitted)))
}

/// The streams of [`DStream::map_with_state`]: the records the function emitted in each batch
/// (this handle dereferences to that stream), and the state after each batch.
pub struct MapWithStateDStream<K, S, U> {
    /// The state stream itself: what is checkpointed.
    state: DStream<(K, Slot<S, U>)>,
    mapped: DStream<U>,
    snapshots: DStream<(K, S)>,
}

impl<K: Key, S: Data, U: Data> MapWithStateDStream<K, S, U> {
    /// Checkpoints the state every `interval` (a non-zero multiple of the slide), as Spark's
    /// `MapWithStateDStream.checkpoint`: the state stream behind the emitted records is what
    /// is checkpointed, never the emitted records themselves. The default is the smallest
    /// multiple of the slide of at least 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # use std::sync::Arc;
    /// # use dstream::{ManualClock, StepCluster, State, StateSpec, StreamingContext, Time};
    /// # let cluster = StepCluster::builder().build();
    /// # let ssc = StreamingContext::new(cluster.context(), Duration::from_secs(1), Arc::new(ManualClock::new(Time::ZERO)))?;
    /// let (_queue, pairs) = ssc.queue_stream::<(String, u64)>(2);
    /// let spec = StateSpec::function(|_k: &String, v: Option<u64>, s: &mut State<u64>| {
    ///     s.update(s.get().copied().unwrap_or(0) + v.unwrap_or(0));
    ///     None::<()>
    /// });
    /// let counted = pairs.map_with_state(spec)?.checkpoint(Duration::from_secs(2))?;
    /// assert!(counted.checkpoint(Duration::from_millis(1500)).is_err()); // not a multiple of the slide
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn checkpoint(&self, interval: Duration) -> Result<MapWithStateDStream<K, S, U>, Error> {
        self.state.checkpoint(interval)?;
        Ok(self.clone())
    }

    /// The records the function emitted in each batch.
    pub fn stream(&self) -> &DStream<U> {
        &self.mapped
    }

    /// The records the function emitted in each batch, as a plain stream.
    pub fn into_stream(self) -> DStream<U> {
        self.mapped
    }

    #[doc(alias = "stateSnapshots")]
    /// The whole state after each batch: every key with its state. Reads the persisted state
    /// the emitted records come from, so the function does not run again.
    pub fn state_snapshots(&self) -> DStream<(K, S)> {
        self.snapshots.clone()
    }
}

impl<K, S, U> Deref for MapWithStateDStream<K, S, U> {
    type Target = DStream<U>;

    fn deref(&self) -> &DStream<U> {
        &self.mapped
    }
}

impl<K, S, U> Clone for MapWithStateDStream<K, S, U> {
    fn clone(&self) -> Self {
        MapWithStateDStream {
            state: self.state.clone(),
            mapped: self.mapped.clone(),
            snapshots: self.snapshots.clone(),
        }
    }
}

impl<K: Key, S: Data, U: Data> std::fmt::Debug for MapWithStateDStream<K, S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWithStateDStream").field("mapped", &self.mapped).field("snapshots", &self.snapshots).finish()
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    #[doc(alias = "updateStateByKey")]
    /// A stream of the state of every key, updated each batch as in Spark's
    /// `updateStateByKey`: for every key of the previous state or of the batch, `f(values,
    /// previous)` gets the key's values in this batch (in order; empty when it got none, so `f`
    /// runs for every key of the state every batch) and its previous state, and returns the
    /// new state, or `None` to remove the key.
    ///
    /// The state is hash-partitioned into `partitions` partitions (zero is an error) and
    /// persisted: each batch reads the previous state where it is cached, without shuffling it;
    /// only the batch's values are shuffled.
    ///
    /// # Examples
    ///
    /// Running page-view counts; a page leaves the state after a batch without views:
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let views = vec![vec![('a', 1u64), ('b', 1), ('a', 1)], vec![('a', 1)], vec![]];
    /// let mut out = StreamTest::new().run(views, |s| {
    ///     s.update_state_by_key(|vs: Vec<u64>, total: Option<u64>| {
    ///         if vs.is_empty() { None } else { Some(total.unwrap_or(0) + vs.iter().sum::<u64>()) }
    ///     }, 2).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 2), ('b', 1)], vec![('a', 3)], vec![]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn update_state_by_key<S: Data>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
        partitions: usize,
    ) -> Result<DStream<(K, S)>, Error> {
        self.update_state(Arc::new(f), partitions, None)
    }

    /// [`DStream::update_state_by_key`] starting from the state `initial` (Spark's
    /// `updateStateByKey(func, partitioner, initialRDD)`): at the first batch, `f` sees each
    /// key of `initial` with its state there (a repeated key keeps one of its states). The
    /// state is hash-partitioned into `partitions` partitions (zero is an error); `initial` is
    /// moved into that partitioning once, at the first batch, unless it already has it.
    ///
    /// # Examples
    ///
    /// Running totals that start from yesterday's:
    ///
    /// ```
    /// use dstream::testing::StreamTest;
    /// let mut out = StreamTest::new().run(vec![vec![('a', 1u64), ('b', 2)], vec![('a', 1)]], |s| {
    ///     let yesterday = s.context().context().parallelize(vec![('a', 10u64), ('c', 7)], 2).unwrap();
    ///     let add = |vs: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + vs.iter().sum::<u64>());
    ///     s.update_state_by_key_with_initial(add, 2, yesterday).unwrap()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 11), ('b', 2), ('c', 7)], vec![('a', 12), ('b', 2), ('c', 7)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    #[doc(alias = "updateStateByKey")]
    pub fn update_state_by_key_with_initial<S: Data>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
        partitions: usize,
        initial: Rdd<(K, S)>,
    ) -> Result<DStream<(K, S)>, Error> {
        self.update_state(Arc::new(f), partitions, Some(initial))
    }

    fn update_state<S: Data>(
        &self,
        f: UpdateFn<V, S>,
        partitions: usize,
        initial: Option<Rdd<(K, S)>>,
    ) -> Result<DStream<(K, S)>, Error> {
        let partitions = crate::rdd::check_partitions("update_state_by_key", partitions)?;
        let parent = Arc::clone(self.node());
        let mut params = format!("partitions={partitions}");
        if let Some(initial) = &initial {
            params.push_str(&format!(" initial={}", initial.id()));
        }
        Ok(self_reading(self, "update_state_by_key", |this| UpdateState { parent, this, partitions, f, initial })
            .with_params(params)
            .checkpointed_by_default())
    }

    #[doc(alias = "mapWithState")]
    /// Maps every record with a per-key state, as Spark's `mapWithState`: for every record
    /// `(key, value)` of a batch, in order, `f(&key, Some(value), &mut state)` may read, update
    /// or remove the key's [`State`] and emit a record. Keys without values are left alone,
    /// unless the spec has a [timeout](StateSpec::timeout). The state is hash-partitioned and
    /// persisted as for [`DStream::update_state_by_key`], so it is never shuffled again.
    ///
    /// Returns the stream of emitted records, with the stream of state snapshots beside it.
    /// A zero partition count is an error.
    ///
    /// # Examples
    ///
    /// Running sums, emitting each key's new sum; `b` times out after two silent batches:
    ///
    /// ```
    /// use std::time::Duration;
    /// use dstream::testing::StreamTest;
    /// use dstream::{State, StateSpec};
    /// let spec = StateSpec::function(|k: &char, v: Option<i32>, state: &mut State<i32>| {
    ///     let v = v?; // the timeout call emits nothing
    ///     let sum = state.get().copied().unwrap_or(0) + v;
    ///     state.update(sum);
    ///     Some((*k, sum))
    /// })
    /// .partitions(2)
    /// .timeout(Duration::from_secs(1));
    /// let input = vec![vec![('a', 1), ('b', 2), ('a', 3)], vec![('a', 1)], vec![('a', 1)]];
    /// let mut sums = StreamTest::new().run(input.clone(), |s| s.map_with_state(spec.clone()).unwrap().into_stream())?;
    /// sums.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(sums, vec![vec![('a', 1), ('a', 4), ('b', 2)], vec![('a', 5)], vec![('a', 6)]]);
    /// let mut states = StreamTest::new().run(input, |s| s.map_with_state(spec.clone()).unwrap().state_snapshots())?;
    /// states.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(states, vec![vec![('a', 4), ('b', 2)], vec![('a', 5), ('b', 2)], vec![('a', 6)]]);
    /// # Ok::<(), dstream::Error>(())
    /// ```
    pub fn map_with_state<S: Data, U: Data>(
        &self,
        spec: StateSpec<K, V, S, U>,
    ) -> Result<MapWithStateDStream<K, S, U>, Error> {
        if let Some(n) = spec.partitions {
            crate::rdd::check_partitions("map_with_state", n)?;
        }
        let parent = Arc::clone(self.node());
        let params = format!(
            "partitions={:?} timeout={:?} initial={:?}",
            spec.partitions,
            spec.timeout,
            spec.initial.as_ref().map(|rdd| rdd.id().to_string())
        );
        let state = self_reading(self, "map_with_state", |this| MapWithState { parent, this, spec })
            .with_params(params)
            .checkpointed_by_default();
        let mapped = state.flat_map(|(_, (_, emitted)): (K, Slot<S, U>)| emitted);
        let snapshots = state.flat_map(|(k, (s, _)): (K, Slot<S, U>)| s.map(|(s, _)| (k, s)));
        Ok(MapWithStateDStream { state, mapped, snapshots })
    }
}
